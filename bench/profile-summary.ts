/**
 * Summarizes V8 CPU profiles (from `npm run bench -- --profile`, or any `node --cpu-prof`): the functions
 * with the most self time, those with the most total time (self + callees), and self time by file.
 *
 *   node build/bench/profile-summary.js .bench-tmp/profiles/*.cpuprofile [--top 25]
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function where(frame: CallFrame): string {
  if (!frame.url) return "";
  const url = frame.url.replace(/^file:\/\//, "");
  const inRepo = /\/build\/(src|bench)\/(.*)$/.exec(url);
  const short = inRepo
    ? `${inRepo[1]}/${inRepo[2]}`
    : url.replace(/^.*\/node_modules\//, "").replace(/^node:/, "node:");
  return `${short}:${frame.lineNumber + 1}`;
}

function summarize(path: string, top: number): string {
  const profile = JSON.parse(readFileSync(path, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMicros = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const total = profile.endTime - profile.startTime;
  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  for (const [id, micros] of selfMicros) {
    const frame = byId.get(id)?.callFrame;
    if (!frame) continue;
    const name = frame.functionName || "(anonymous)";
    const key = `${name}  ${where(frame)}`.trim();
    functions.set(key, (functions.get(key) ?? 0) + micros);
    const file = frame.url ? (where(frame).split(":")[0] ?? "") : name;
    files.set(file, (files.get(file) ?? 0) + micros);
  }
  const pct = (micros: number) => `${((micros / total) * 100).toFixed(1).padStart(5)}%`;
  const busy = total - (functions.get("(idle)") ?? 0);
  const lines = [
    `${basename(path)}: ${(total / 1e6).toFixed(2)} s profiled, ${pct(busy).trim()} busy (not idle)`,
    "",
    `  self time by function (top ${top}):`,
  ];
  for (const [key, micros] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${pct(micros)}  ${key}`);
  }
  // Inclusive ("total") time: a function's self time plus its callees', counted once per call stack.
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const inclusive = new Map<string, number>();
  for (const [id, micros] of selfMicros) {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)?.callFrame;
      if (!frame?.url) continue;
      const key = `${frame.functionName || "(anonymous)"}  ${where(frame)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + micros);
    }
  }
  lines.push("", `  total time (self + callees) by JavaScript function (top ${top}):`);
  for (const [key, micros] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${pct(micros)}  ${key}`);
  }
  lines.push("", "  self time by file (top 15):");
  for (const [file, micros] of [...files].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
    lines.push(`  ${pct(micros)}  ${file}`);
  }
  return lines.join("\n");
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: "string", default: "25" } },
});
if (positionals.length === 0) {
  process.stderr.write("Usage: node build/bench/profile-summary.js FILE.cpuprofile... [--top N]\n");
  process.exitCode = 2;
} else {
  for (const path of positionals) process.stdout.write(`${summarize(path, Number(values.top))}\n\n`);
}
