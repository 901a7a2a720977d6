/**
 * `npm run fuzz`: runs every fuzz target under Jazzer.js (libFuzzer) one after the other, niced, for a
 * share of the time given, then prints what each did.
 *
 *   npm run fuzz -- --seconds 600            ten minutes in all (or FUZZ_SECONDS=600 npm run fuzz)
 *   npm run fuzz -- --target session         one target (repeat --target for several)
 *   npm run fuzz -- --coverage               no fuzzing: replay the corpora and report coverage of build/src
 *                                            (.fuzz/coverage/<target>/: a summary per file, and HTML)
 *
 * Seeds come from fuzz/corpus/<target>/ (committed); what the fuzzer learns goes to .fuzz/corpus/<target>/
 * (kept between runs, not committed), crashing inputs to .fuzz/findings/, each run's log to .fuzz/logs/.
 */
import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ensureEngineLoads } from "./prebuild-compat.js";
import {
  corpusDirectory,
  FUZZ_TARGETS,
  type FuzzTarget,
  REPOSITORY_ROOT,
  targetModule,
} from "./targets/index.js";

const WORK = join(REPOSITORY_ROOT, ".fuzz");
const DEFAULT_SECONDS = 300;

interface Outcome {
  target: string;
  seconds: number;
  runs: string;
  coverage: string;
  result: string;
}

const { values } = parseArgs({
  options: {
    seconds: { type: "string" },
    target: { type: "string", multiple: true },
    coverage: { type: "boolean", default: false },
  },
});

const totalSeconds = Number(values.seconds ?? process.env.FUZZ_SECONDS ?? DEFAULT_SECONDS);
if (!Number.isInteger(totalSeconds) || totalSeconds < 1) {
  console.error(`--seconds (or FUZZ_SECONDS) must be a whole number of seconds, got ${values.seconds}`);
  process.exit(2);
}
const chosen = values.target ?? FUZZ_TARGETS.map((target) => target.name);
const unknown = chosen.filter((name) => !FUZZ_TARGETS.some((target) => target.name === name));
if (unknown.length > 0) {
  console.error(
    `Unknown target ${unknown.join(", ")}; the targets: ${FUZZ_TARGETS.map((t) => t.name).join(", ")}`,
  );
  process.exit(2);
}
const targets = FUZZ_TARGETS.filter((target) => chosen.includes(target.name));

try {
  console.log(ensureEngineLoads());
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(2);
}

const share = Math.max(10, Math.floor(totalSeconds / targets.length));
const outcomes: Outcome[] = [];
for (const target of targets) outcomes.push(await run(target, share));
console.log("");
console.table(outcomes);
const failed = outcomes.filter((outcome) => outcome.result !== "clean");
if (failed.length > 0) {
  console.error(`Findings in ${failed.map((o) => o.target).join(", ")}: inputs in ${join(WORK, "findings")}`);
  process.exit(1);
}

/** Jazzer.js exits 0 even when libFuzzer refuses to start (a bad dictionary, say): a clean run says Done. */
function verdict(code: number, findings: number, finished: boolean): string {
  if (code !== 0) return `exit ${code}, ${findings} finding file(s)`;
  return finished ? "clean" : "did not run (see the log)";
}

async function run(target: FuzzTarget, seconds: number): Promise<Outcome> {
  const learnt = join(WORK, "corpus", target.name);
  for (const dir of [learnt, join(WORK, "findings"), join(WORK, "logs")]) mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const logPath = join(WORK, "logs", `${target.name}-${stamp}.log`);
  const log = createWriteStream(logPath);
  const cli = createRequire(import.meta.url).resolve("@jazzer.js/core/dist/cli.js");
  const jazzer = [
    cli,
    targetModule(target),
    learnt,
    corpusDirectory(target),
    "--includes",
    `${REPOSITORY_ROOT}build/src/`,
    "--disable_bug_detectors",
    ".*",
    "--timeout",
    "10000",
    ...(target.sync ? ["--sync"] : []),
    ...(values.coverage
      ? [
          ...[
            "--mode",
            "regression",
            "--coverage",
            "--coverage_directory",
            join(WORK, "coverage", target.name),
          ],
          ...["text-summary", "json-summary", "html"].map((reporter) => `--coverage_reporters=${reporter}`),
        ]
      : []),
    "--",
    `-max_total_time=${seconds}`,
    `-max_len=${target.maxLength}`,
    `-dict=${join(REPOSITORY_ROOT, "fuzz", "dictionaries", `${target.name}.dict`)}`,
    `-artifact_prefix=${join(WORK, "findings", `${target.name}-`)}`,
    "-print_final_stats=1",
  ];
  console.log(
    `\n== ${target.name}: ${target.subject}, ${values.coverage ? "coverage" : `${seconds} s`} (log ${logPath})`,
  );
  const child = spawn("nice", ["-n", "19", process.execPath, ...jazzer], {
    cwd: REPOSITORY_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let tail = "";
  const keep = (chunk: Buffer) => {
    log.write(chunk);
    tail = (tail + chunk.toString("utf8")).slice(-20_000);
  };
  child.stdout.on("data", (chunk: Buffer) => {
    process.stdout.write(chunk);
    keep(chunk);
  });
  child.stderr.on("data", (chunk: Buffer) => {
    process.stderr.write(chunk);
    keep(chunk);
  });
  const code = await new Promise<number>((resolve) => child.on("close", (status) => resolve(status ?? 1)));
  log.end();
  const stats = [...tail.matchAll(/#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/g)].at(-1);
  const runs = /Done (\d+) runs/.exec(tail)?.[1] ?? stats?.[1] ?? "?";
  const found = readdirSync(join(WORK, "findings")).filter((file) => file.startsWith(`${target.name}-`));
  return {
    target: target.name,
    seconds,
    runs,
    coverage: stats ? `cov ${stats[2]} ft ${stats[3]} corpus ${stats[4]}` : "?",
    result: verdict(code, found.length, /Done \d+ runs|DONE/.test(tail)),
  };
}
