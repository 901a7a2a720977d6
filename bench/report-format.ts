/** How the report writes numbers, tables, spreads and the line that says how a run was made. */
import type { MessageSample } from "./scenarios.js";
import { median } from "./util.js";

export const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "n/a");
export const fixed = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : "n/a");
export const percent = (x: number) => (Number.isFinite(x) ? `${Math.round(x * 100)}%` : "n/a");
export const ratio = (x: number) => (Number.isFinite(x) && x > 0 ? `${x.toFixed(2)}x` : "n/a");

export function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

/** The median of some runs and their spread (lowest and highest). */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(values: readonly number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

export function showSpread(s: Spread, format: (x: number) => string = int): string {
  const [low, high] = [format(s.min), format(s.max)];
  return low === high ? format(s.median) : `${format(s.median)} (${low}–${high})`;
}

/** The server's CPU time per message in one run, in microseconds. */
export function cpuPerMessage(sample: MessageSample): number {
  return (sample.serverCpu * sample.elapsedMs * 1000) / sample.messages;
}

export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}

/** What the run-describing lines need to know of a run. */
export interface RunFacts {
  started: Date;
  settings: { argv: string[] };
  loadBefore: number[];
  loadAfter: number[];
  machine: { cores: number };
}

/** When and how the run was made, and the load average around it: one sentence. */
export function runLine(report: RunFacts): string {
  return `Run on ${report.started.toISOString().replace("T", " ").slice(0, 16)} UTC with \`npm run bench${report.settings.argv.length ? ` -- ${report.settings.argv.map(shellQuote).join(" ")}` : ""}\`; load average before / after: ${report.loadBefore.join(", ")} / ${report.loadAfter.join(", ")}.`;
}

/** A paragraph (and its blank line) when the load average says other work shared the machine; else none. */
export function sharedMachineNote(report: RunFacts): string[] {
  const cores = report.machine.cores;
  if (Math.max(...report.loadBefore.slice(0, 1), ...report.loadAfter.slice(0, 1)) <= cores) return [];
  return [
    `**The machine was shared with other work during this run** (a load average above its ${cores} cores): the rates are noisy and low, the spreads wide; CPU per message is less sensitive to that, and the ratios are taken within the same run.`,
    "",
  ];
}
