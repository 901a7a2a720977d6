/**
 * `npm run bench`: mailgate against nodemailer's smtp-server and Postfix's smtp-sink, as issue 7 asks.
 * Writes BENCHMARKS.md and prints the same tables on stdout (progress goes to stderr).
 *
 *   npm run bench                      the full run (20,000 messages per 2 KB scenario, 3 runs each)
 *   npm run bench -- --quick           a smoke run: small counts, one run each
 *   npm run bench -- --help            every option
 *
 * Exits 1 only when a run breaks (a server that did not accept every message, a generator that failed);
 * slow figures never fail it.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join, relative } from "node:path";
import { parseArgs } from "node:util";
import { ENGINE_SCENARIOS, ENGINE_SERVERS } from "./engine-section.js";
import {
  type BenchReport,
  type BenchSettings,
  currentLoad,
  describeMachine,
  renderReport,
  type ScenarioResult,
} from "./report.js";
import {
  buildScenarios,
  type IdleSample,
  type MessageSample,
  type MessageScenario,
  measureDiskCeiling,
  measureIdle,
  measureMessages,
  measureSinkCeiling,
  messageBytes,
  type RunContext,
  SMTP_SOURCE_PATH,
} from "./scenarios.js";
import {
  killAllServers,
  removeMaildirs,
  SERVER_SPECS,
  type ServerId,
  SMTP_SINK_PATH,
  setAsideLeftoverMaildirs,
} from "./servers.js";
import { sinkBackend } from "./sink-backends.js";
import { BENCH_TMP, formatBytes, REPO_ROOT, SESSION_TIMEOUT_SECONDS } from "./util.js";

/** The idle scenario's window must end well before the servers' session timeout could close its connections. */
const MAX_IDLE_SETTLE_SECONDS = SESSION_TIMEOUT_SECONDS - 60;

const HELP = `Usage: npm run bench -- [options]

  --engine                issue 18's comparison only (npm run bench:engine): scenarios 2k-s1-many-nopipe
                          and 2k-s100-many-nopipe, servers mailgate, mailgate-stream,
                          mailgate-stream-events, node-floor and node-floor-stream,
                          --runs 5, --ceiling-files 0, --out .bench-tmp/engine.md (each can still be given)
  --quick                 smoke run: --runs 1 --messages 1000 --max-run-seconds 5 --warmup 200
                          --idle 500 --idle-settle 5 --large-count 2 --huge-mb 256 --ceiling-files 1000
  --runs N                runs per figure, the median is reported (default 3)
  --messages N            2 KB messages per scenario and run (default 20000)
  --max-run-seconds S     lower a server's message count so that one run takes about S seconds
                          at most (default 20; 0 = never lower it)
  --idle N                idle connections (default 5000)
  --idle-settle S         hold the idle connections S seconds after the last one was held, reading
                          the server's RSS every second: the table gives the RSS per connection after
                          1 s and after S s, the settled figure (default 25, at most
                          ${MAX_IDLE_SETTLE_SECONDS}; 0 = only the 1 s figure)
  --large-count N         messages in the 50 MB scenario (default 10)
  --large-mb N            their size in MiB (default 50)
  --huge-mb N             the streaming scenario's message in MiB (default 1024)
  --ceiling-files N       before each mailgate-serve run of a 2 KB scenario, measure the disk's ceiling
                          for its Maildir sequence (open, write, fsync, close, rename) on N files with
                          as many writers as the scenario has sessions (default 3000; 0 = never)
  --only REGEX            only the scenarios whose id matches (ids: 2k-s100-many-nopipe, 2k-s1-one-pipe,
                          50m, idle, 1g, ...)
  --servers LIST          only these servers (mailgate, mailgate-stream, mailgate-stream-events,
                          mailgate-serve, smtp-server,
                          smtp-sink, node-floor, node-floor-stream, mailgate-workers2,
                          mailgate-serve-workers2, mailgate-serve-null,
                          mailgate-serve-amqp, mailgate-serve-nats, mailgate-serve-http),
                          comma-separated; node-floor, a reference (the least work a Node server can
                          do per command), runs in the 2 KB scenarios only, node-floor-stream (the same
                          handing each message to a Readable drained with for await) in those without
                          PIPELINING, many per connection; mailgate-serve-null (mailgate serve's work
                          for any store, into nothing) beside the sinks; the mailgate-serve-<sink>
                          servers (mailgate serve --sink, issue 19) and the workers servers (the
                          discarding hook with runWorkers and mailgate serve --workers 2, issue 21;
                          CPU and RSS summed over the primary and its workers) in 2k-s100-many-nopipe
                          only, each sink server's run preceded by its sink's ceiling (the same
                          messages published directly by
                          the client library, as many in flight as sessions). RabbitMQ is expected at
                          127.0.0.1:5672 (guest/guest) and NATS with JetStream at 127.0.0.1:4222;
                          a sink whose broker is not there is left out, with a line saying so
  --plain-generator G     who sends the 2 KB scenarios without PIPELINING: smtp-source (default) or load
  --profile               run the mailgate and node-floor children with --cpu-prof (profiles in .bench-tmp/profiles/)
  --warmup N              before each measured 2 KB run, send this many messages (at most a fifth of
                          the run's count) to the same server, unmeasured (default 2000; 0 = none)
  --timeout S             a generator run longer than this is killed and the run fails (default 600)
  --out FILE              where to write the report (default BENCHMARKS.md)
`;

function integer(
  name: string,
  value: string | undefined,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`;
    throw new Error(`Invalid value for --${name}: "${value}"; it accepts a whole number ${range}.`);
  }
  return n;
}

function parse(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: "boolean" },
      engine: { type: "boolean" },
      runs: { type: "string" },
      messages: { type: "string" },
      "max-run-seconds": { type: "string" },
      idle: { type: "string" },
      "idle-settle": { type: "string" },
      "ceiling-files": { type: "string" },
      "large-count": { type: "string" },
      "large-mb": { type: "string" },
      "huge-mb": { type: "string" },
      only: { type: "string" },
      servers: { type: "string" },
      "plain-generator": { type: "string" },
      profile: { type: "boolean" },
      timeout: { type: "string" },
      warmup: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const quick = values.quick === true;
  const engine = values.engine === true;
  const servers = (values.servers?.split(",").map((s) => s.trim()) ??
    (engine ? [...ENGINE_SERVERS] : undefined)) as ServerId[] | undefined;
  for (const id of servers ?? []) {
    if (!(id in SERVER_SPECS)) throw new Error(`Unknown server "${id}" in --servers.`);
  }
  const plain = values["plain-generator"] ?? "smtp-source";
  if (plain !== "smtp-source" && plain !== "load") {
    throw new Error(`Invalid value for --plain-generator: "${plain}"; it accepts smtp-source or load.`);
  }
  return {
    help: values.help === true,
    quick,
    runs: integer("runs", values.runs, quick ? 1 : engine ? 5 : 3, 1),
    messages: integer("messages", values.messages, quick ? 1000 : 20_000, 1),
    maxRunSeconds: integer("max-run-seconds", values["max-run-seconds"], quick ? 5 : 20),
    idle: integer("idle", values.idle, quick ? 500 : 5000, 1),
    idleSettleSeconds: integer(
      "idle-settle",
      values["idle-settle"],
      quick ? 5 : 25,
      0,
      MAX_IDLE_SETTLE_SECONDS,
    ),
    ceilingFiles: integer("ceiling-files", values["ceiling-files"], engine ? 0 : quick ? 1000 : 3000),
    largeCount: integer("large-count", values["large-count"], quick ? 2 : 10, 1),
    largeMiB: integer("large-mb", values["large-mb"], 50, 1),
    hugeMiB: integer("huge-mb", values["huge-mb"], quick ? 256 : 1024, 1),
    only: values.only ? new RegExp(values.only) : engine ? ENGINE_SCENARIOS : undefined,
    servers,
    plainGenerator: plain as "smtp-source" | "load",
    profile: values.profile === true,
    timeoutSeconds: integer("timeout", values.timeout, 600, 1),
    warmup: integer("warmup", values.warmup, quick ? 200 : 2000),
    out: values.out ?? (engine ? ".bench-tmp/engine.md" : "BENCHMARKS.md"),
  };
}

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

function describeSample(sample: MessageSample | IdleSample): string {
  if ("rssEverySecond" in sample) {
    const after1s = `${formatBytes(sample.rssBefore)} -> ${formatBytes(sample.rssEverySecond[0] ?? Number.NaN)} after 1 s, ${formatBytes(sample.perConnectionAfter1s)} per connection`;
    if (sample.perConnectionSettled === undefined) return after1s;
    return `${after1s}; ${formatBytes(sample.rssEverySecond.at(-1) ?? Number.NaN)} after ${sample.rssEverySecond.length} s, ${formatBytes(sample.perConnectionSettled)} per connection (lowest ${formatBytes(sample.perConnectionLowest ?? Number.NaN)})`;
  }
  return `${sample.messages} msgs in ${(sample.elapsedMs / 1000).toFixed(2)} s: ${Math.round(sample.messagesPerSecond)} msg/s, ${sample.mbPerSecond.toFixed(1)} MB/s, peak ${formatBytes(sample.peakRss)}, server CPU ${Math.round(sample.serverCpu * 100)}%, generator CPU ${Math.round(sample.generatorCpu * 100)}%`;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const options = parse(argv);
  if (options.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const missing = [SMTP_SOURCE_PATH, SMTP_SINK_PATH].filter((path) => !existsSync(path));
  if (missing.length > 0) {
    throw new Error(
      `${missing.join(" and ")} not found: install Debian's postfix package (DEBIAN_FRONTEND=noninteractive apt-get install -y postfix, and choose "No configuration" so that no mail daemon runs).`,
    );
  }
  setAsideLeftoverMaildirs(); // of an interrupted run: removed at the end, with this run's
  rmSync(join(BENCH_TMP, "logs"), { recursive: true, force: true }); // the servers' logs of the last run only
  const started = new Date();
  const loadBefore = currentLoad();
  const scenarios = buildScenarios({
    messages: options.messages,
    largeCount: options.largeCount,
    largeMiB: options.largeMiB,
    hugeMiB: options.hugeMiB,
    idleConnections: options.idle,
    idleSettleSeconds: options.idleSettleSeconds,
    plainGenerator: options.plainGenerator,
  }).filter((s) => !options.only || options.only.test(s.id));
  if (scenarios.length === 0) throw new Error(`No scenario id matches --only ${options.only?.source}.`);
  const profileDir = options.profile ? join(BENCH_TMP, "profiles") : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  // One configuration for every run: room for the idle scenario's connections.
  const maxConnections = Math.max(1000, options.idle + 100);
  let sequence = 0;
  const context = (server: ServerId, scenario: string): RunContext => ({
    maxConnections,
    ...(profileDir ? { profileDir } : {}),
    tag: `${scenario}-${server}-${process.pid}-${++sequence}`,
    timeoutMs: options.timeoutSeconds * 1000,
  });

  // 2 KB runs are preceded by a warm-up of at most a fifth of their count (the big ones need none).
  const warmupFor = (scenario: MessageScenario, count: number) =>
    scenario.group === "2k" ? Math.min(options.warmup, Math.ceil(count / 5)) : 0;

  const results: ScenarioResult[] = [];
  let broken = 0;
  for (const scenario of scenarios) {
    const servers = scenario.servers.filter((s) => !options.servers || options.servers.includes(s));
    const result: ScenarioResult = {
      scenario,
      servers,
      counts: {},
      samples: {},
      diskCeilings: [],
      sinkCeilings: {},
      leftOut: [],
      errors: [],
    };
    results.push(result);
    progress(`\n== ${scenario.id}: ${scenario.title}`);
    const failed = new Set<ServerId>();
    const reportBroken = (what: string, error: unknown) => {
      const message = `${what}: ${error instanceof Error ? error.message : String(error)}`;
      progress(`   BROKEN ${message}`);
      result.errors.push(message);
      broken++;
    };
    const fail = (server: ServerId, what: string, error: unknown) => {
      reportBroken(`${server}, ${what}`, error);
      failed.add(server);
    };
    for (const server of [...servers]) {
      const why = await sinkBackend(server)?.unavailable();
      if (why === undefined) continue;
      servers.splice(servers.indexOf(server), 1);
      result.leftOut.push(`${server}: ${why}`);
      progress(`   left out ${server}: ${why}`);
    }
    const measuresDiskCeiling =
      options.ceilingFiles > 0 && scenario.kind === "messages" && scenario.group === "2k";

    // Calibration (2 KB scenarios): find the count that fits the time cap; also a warm-up.
    if (scenario.kind === "messages") {
      for (const server of servers) {
        try {
          result.counts[server] = await calibrate(scenario, server, options.maxRunSeconds, (n) =>
            context(server, `${scenario.id}-cal${n}`),
          );
        } catch (error) {
          fail(server, "calibration", error);
        }
      }
    }

    for (let run = 0; run < options.runs; run++) {
      // Rotate the order so that no server always runs first (or last) in a noisy period.
      const order = servers.map((_, i) => servers[(i + run) % servers.length] as ServerId);
      for (const server of order) {
        if (failed.has(server)) continue;
        if (measuresDiskCeiling && server === "mailgate-serve") {
          try {
            const ceiling = await measureDiskCeiling(
              scenario.sessions,
              options.ceilingFiles,
              messageBytes(scenario),
              context(server, `${scenario.id}-disk-ceiling`),
            );
            result.diskCeilings.push(ceiling);
            progress(
              `   run ${run + 1}/${options.runs} ${"disk ceiling".padEnd(15)} ${ceiling.files} files, ${ceiling.writers} writers: ${Math.round(ceiling.filesPerSecond)} files/s`,
            );
          } catch (error) {
            reportBroken(`disk ceiling, run ${run + 1}`, error);
          }
        }
        const backend = sinkBackend(server);
        if (backend && scenario.kind === "messages") {
          const count = result.counts[server] ?? scenario.messages;
          try {
            const ceiling = await measureSinkCeiling(
              backend,
              scenario,
              count,
              warmupFor(scenario, count),
              context(server, `${scenario.id}-ceiling`),
            );
            const list = result.sinkCeilings[server] ?? [];
            list.push(ceiling);
            result.sinkCeilings[server] = list;
            progress(
              `   run ${run + 1}/${options.runs} ${`${backend.name} ceiling`.padEnd(15)} ${ceiling.messages} msgs: ${Math.round(ceiling.messagesPerSecond)} msg/s, publisher CPU ${Math.round(ceiling.publisherCpu * 100)}%`,
            );
          } catch (error) {
            reportBroken(`${backend.name} ceiling, run ${run + 1}`, error);
          }
        }
        try {
          const sample =
            scenario.kind === "messages"
              ? await measureMessages(
                  scenario,
                  server,
                  result.counts[server] ?? scenario.messages,
                  context(server, scenario.id),
                  warmupFor(scenario, result.counts[server] ?? scenario.messages),
                )
              : await measureIdle(scenario, server, context(server, scenario.id));
          const list = result.samples[server] ?? [];
          list.push(sample);
          result.samples[server] = list;
          progress(`   run ${run + 1}/${options.runs} ${server.padEnd(15)} ${describeSample(sample)}`);
        } catch (error) {
          fail(server, `run ${run + 1}`, error);
        }
      }
    }
  }

  const settings: BenchSettings = {
    quick: options.quick,
    runs: options.runs,
    messages: options.messages,
    maxRunSeconds: options.maxRunSeconds,
    warmup: options.warmup,
    profile: options.profile,
    argv,
  };
  const report: BenchReport = {
    settings,
    machine: describeMachine(),
    started,
    finished: new Date(),
    loadBefore,
    loadAfter: currentLoad(),
    results,
  };
  const markdown = renderReport(report);
  const out = isAbsolute(options.out) ? options.out : join(REPO_ROOT, options.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, markdown);
  mkdirSync(BENCH_TMP, { recursive: true });
  const raw = join(BENCH_TMP, `results-${started.toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(raw, JSON.stringify(report, null, 2));
  process.stdout.write(`${markdown}\n`);
  progress(
    `\nWrote ${relative(process.cwd(), out) || out} (raw runs: ${relative(process.cwd(), raw)}) in ${Math.round((report.finished.getTime() - started.getTime()) / 1000)} s.`,
  );
  if (profileDir)
    progress(`CPU profiles of the mailgate and node-floor children: ${relative(process.cwd(), profileDir)}/`);
  progress("Removing the Maildirs of mailgate serve...");
  removeMaildirs();
  if (broken > 0) progress(`${broken} run(s) broke: see "Broken run" in the report.`);
  return broken > 0 ? 1 : 0;
}

/**
 * Runs growing probes (20, 200, 2,000... messages, at least 2 per session) until one lasts 0.3 s or
 * reaches the scenario's count, and returns the count that fits `maxSeconds` at the rate it measured
 * (never more than the scenario asks). The probes are discarded.
 */
async function calibrate(
  scenario: MessageScenario,
  server: ServerId,
  maxSeconds: number,
  context: (n: number) => RunContext,
): Promise<number> {
  if (maxSeconds <= 0 || scenario.group !== "2k") return scenario.messages;
  let probe = Math.min(scenario.messages, Math.max(20, scenario.sessions * 2));
  for (;;) {
    const sample = await measureMessages(scenario, server, probe, context(probe));
    if (sample.elapsedMs >= 300 || probe >= scenario.messages) {
      const fits = Math.floor(sample.messagesPerSecond * maxSeconds);
      const count = Math.max(Math.min(scenario.messages, fits), probe);
      progress(
        `   calibrated ${server.padEnd(15)} ${Math.round(sample.messagesPerSecond)} msg/s on ${probe}: ${count} messages per run`,
      );
      return count;
    }
    probe = Math.min(scenario.messages, probe * 10);
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    killAllServers();
    process.stderr.write(`bench: ${signal}, servers stopped\n`);
    process.exit(130);
  });
}

main().then(
  (status) => {
    process.exitCode = status;
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 2;
  },
);
