/**
 * Turns the runs into BENCHMARKS.md (and the same tables on stdout): the machine, the date, the exact
 * commands, a table per scenario (medians), mailgate's ratios to each peer, and issue 7's targets.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { join, relative } from "node:path";
import { engineSection } from "./engine-section.js";
import {
  cpuPerMessage,
  fixed,
  int,
  percent,
  ratio,
  runLine,
  type Spread,
  sharedMachineNote,
  shellQuote,
  showSpread,
  spread,
  table,
} from "./report-format.js";
import {
  type DiskCeilingSample,
  FSYNC_CEILING_SCRIPT,
  type IdleSample,
  type IdleScenario,
  type MessageSample,
  type MessageScenario,
  messageBytes,
  type Scenario,
  type SinkCeilingSample,
  smtpSourceArgs,
} from "./scenarios.js";
import { SERVER_SPECS, type ServerId } from "./servers.js";
import { SINK_SCENARIO, sinksSection } from "./sinks-section.js";
import { formatBytes, median, REPO_ROOT, SESSION_TIMEOUT_SECONDS } from "./util.js";

export interface ScenarioResult {
  scenario: Scenario;
  /** The servers this run measured (the scenario's, less those left out with --servers). */
  servers: ServerId[];
  /** Messages per run for each server (after the time cap). */
  counts: Partial<Record<ServerId, number>>;
  samples: Partial<Record<ServerId, (MessageSample | IdleSample)[]>>;
  /** The disk-ceiling probe, run right before each `mailgate-serve` run of a 2 KB scenario. */
  diskCeilings: DiskCeilingSample[];
  /** Each sink's ceiling (its direct publisher), run right before each run of its mailgate-serve-<sink>. */
  sinkCeilings: Partial<Record<ServerId, SinkCeilingSample[]>>;
  /** Servers of the scenario that could not run here, and why (a broker not running). */
  leftOut: string[];
  errors: string[];
}

export interface Machine {
  cpu: string;
  cores: number;
  memory: string;
  node: string;
  kernel: string;
  postfix: string;
  smtpServer: string;
  mailgate: string;
}

export interface BenchSettings {
  quick: boolean;
  runs: number;
  messages: number;
  maxRunSeconds: number;
  /** Unmeasured messages before each 2 KB run (at most a fifth of its count). */
  warmup: number;
  /** The mailgate children ran under --cpu-prof (which slows them). */
  profile: boolean;
  argv: string[];
}

export interface BenchReport {
  settings: BenchSettings;
  machine: Machine;
  started: Date;
  finished: Date;
  loadBefore: number[];
  loadAfter: number[];
  results: ScenarioResult[];
}

function quiet(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "unknown";
  }
}

export function describeMachine(): Machine {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? "unknown";
  const pkg = (path: string) => {
    try {
      return String(JSON.parse(readFileSync(join(REPO_ROOT, path), "utf8")).version);
    } catch {
      return "unknown";
    }
  };
  const commit = quiet("git", ["-C", REPO_ROOT, "rev-parse", "--short", "HEAD"]);
  const dirty = quiet("git", ["-C", REPO_ROOT, "status", "--porcelain", "--", "src"]) !== "";
  return {
    cpu: model,
    cores: cpus().length,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    kernel: release(),
    postfix: quiet("dpkg-query", ["-W", "postfix"]).split("\t")[1] ?? "unknown",
    smtpServer: pkg("node_modules/smtp-server/package.json"),
    mailgate: `${pkg("package.json")} (commit ${commit}${dirty ? ", with uncommitted changes in src/" : ""})`,
  };
}

export function currentLoad(): number[] {
  return loadavg().map((x) => Math.round(x * 100) / 100);
}

// ---- medians ----

interface MessageFigures {
  messages: number;
  runs: number;
  messagesPerSecond: number;
  mbPerSecond: number;
  peakRss: number;
  serverCpu: number;
  /** Server CPU time per message, in microseconds: robust to a busy machine, unlike rates. */
  cpuPerMessage: number;
  generatorCpu: number;
}

interface IdleFigures {
  runs: number;
  rssBefore: number;
  rssAfter1s: number;
  /** NaN below: no settle window (--idle-settle 0). */
  rssSettled: number;
  perConnectionAfter1s: number;
  perConnectionSettled: number;
  perConnectionLowest: number;
}

interface DiskCeilingFigures {
  runs: number;
  writers: number;
  files: number;
  filesPerSecond: number;
}

/** The runs of `server` in a messages scenario (none if it did not run). */
function messageSamples(result: ScenarioResult, server: ServerId): MessageSample[] {
  return (result.samples[server] as MessageSample[] | undefined) ?? [];
}

function messageFigures(result: ScenarioResult, server: ServerId): MessageFigures | undefined {
  const samples = messageSamples(result, server);
  if (samples.length === 0) return undefined;
  const m = (pick: (s: MessageSample) => number) => median(samples.map(pick));
  return {
    messages: result.counts[server] ?? samples[0]?.messages ?? 0,
    runs: samples.length,
    messagesPerSecond: m((s) => s.messagesPerSecond),
    mbPerSecond: m((s) => s.mbPerSecond),
    peakRss: m((s) => s.peakRss),
    serverCpu: m((s) => s.serverCpu),
    cpuPerMessage: m(cpuPerMessage),
    generatorCpu: m((s) => s.generatorCpu),
  };
}

function idleFigures(result: ScenarioResult, server: ServerId): IdleFigures | undefined {
  const samples = result.samples[server] as IdleSample[] | undefined;
  if (!samples || samples.length === 0) return undefined;
  const m = (pick: (s: IdleSample) => number | undefined) =>
    median(samples.map((s) => pick(s) ?? Number.NaN));
  return {
    runs: samples.length,
    rssBefore: m((s) => s.rssBefore),
    rssAfter1s: m((s) => s.rssEverySecond[0]),
    rssSettled: m((s) => (s.perConnectionSettled === undefined ? undefined : s.rssEverySecond.at(-1))),
    perConnectionAfter1s: m((s) => s.perConnectionAfter1s),
    perConnectionSettled: m((s) => s.perConnectionSettled),
    perConnectionLowest: m((s) => s.perConnectionLowest),
  };
}

function diskCeilingFigures(result: ScenarioResult): DiskCeilingFigures | undefined {
  const samples = result.diskCeilings;
  const first = samples[0];
  if (!first) return undefined;
  return {
    runs: samples.length,
    writers: first.writers,
    files: first.files,
    filesPerSecond: median(samples.map((s) => s.filesPerSecond)),
  };
}

// ---- formatting ----

/** A generator at this share of a core or more is (close to) the limit of the figure. */
const GENERATOR_BOUND = 0.9;

/** The server whose figures the ratios are about. */
function primary(scenario: Scenario): ServerId {
  return scenario.kind === "messages" && scenario.group !== "2k" ? "mailgate-stream" : "mailgate";
}

function scenarioSection(result: ScenarioResult): string {
  const { scenario } = result;
  const lines = [`### ${scenario.title}`, "", `Scenario \`${scenario.id}\`.`];
  if (scenario.kind === "messages") {
    const ours = primary(scenario);
    const base = messageFigures(result, ours);
    const rows: string[][] = [];
    let generatorBound = false;
    for (const server of result.servers) {
      const f = messageFigures(result, server);
      if (!f) {
        rows.push([`\`${server}\``, "failed", "", "", "", "", "", "", "", ""]);
        continue;
      }
      const r = server === ours || !base ? "" : ratio(base.messagesPerSecond / f.messagesPerSecond);
      rows.push([
        `\`${server}\``,
        `${int(f.messages)} x ${f.runs}`,
        int(f.messagesPerSecond),
        fixed(f.mbPerSecond),
        formatBytes(f.peakRss),
        percent(f.serverCpu),
        int(f.cpuPerMessage),
        f.generatorCpu >= GENERATOR_BOUND ? `**${percent(f.generatorCpu)}**` : percent(f.generatorCpu),
        r,
      ]);
      if (f.generatorCpu >= GENERATOR_BOUND) generatorBound = true;
    }
    lines.push(
      `Message size ${formatBytes(messageBytes(scenario))} (headers and body).`,
      "",
      table(
        [
          "server",
          "messages x runs",
          "messages/s",
          "MB/s",
          "peak RSS",
          "server CPU",
          "server CPU µs/msg",
          "generator CPU",
          `\`${ours}\` ÷ this`,
        ],
        rows,
      ),
    );
    if (generatorBound) {
      lines.push(
        "",
        `Generator CPU in bold: the generator kept ${percent(GENERATOR_BOUND)} or more of a core busy, so that figure is at or near the generator's limit rather than the server's.`,
      );
    }
    const serve = messageFigures(result, "mailgate-serve");
    if (serve && base) {
      lines.push(
        "",
        `\`mailgate serve\` (fsynced Maildir) ÷ \`${ours}\`: ${ratio(serve.messagesPerSecond / base.messagesPerSecond)}.`,
      );
    }
    const ceiling = diskCeilingFigures(result);
    if (serve && ceiling) {
      lines.push(
        "",
        `The disk's ceiling for one fsync per file (open, write, fsync, close, rename; no directory fsync), ${ceiling.writers} writer${ceiling.writers === 1 ? "" : "s"}: ${int(ceiling.filesPerSecond)} files/s (median of ${ceiling.runs} x ${int(ceiling.files)} files); \`mailgate serve\` ÷ ceiling: ${ratio(serve.messagesPerSecond / ceiling.filesPerSecond)}.`,
      );
    }
  } else {
    lines.push("", idleTable(result, scenario));
    if (scenario.settleSeconds > 0) lines.push("", idleNote(scenario.settleSeconds));
  }
  for (const note of result.leftOut ?? []) lines.push("", `Left out: ${note}.`);
  for (const error of result.errors) lines.push("", `**Broken run:** ${error}`);
  return lines.join("\n");
}

function idleTable(result: ScenarioResult, scenario: IdleScenario): string {
  const settled = scenario.settleSeconds > 0;
  const window = `${scenario.settleSeconds} s`;
  const header = [
    "server",
    "runs",
    "RSS before",
    "RSS after 1 s",
    ...(settled ? [`RSS after ${window}`] : []),
    "per connection after 1 s",
    ...(settled
      ? [`per connection settled (after ${window})`, `lowest per connection in the ${window}`]
      : []),
    "`mailgate` ÷ this, after 1 s",
    ...(settled ? ["`mailgate` ÷ this, settled"] : []),
  ];
  const base = idleFigures(result, "mailgate");
  const rows = result.servers.map((server) => {
    const f = idleFigures(result, server);
    if (!f) return [`\`${server}\``, "failed", ...header.slice(2).map(() => "")];
    const versus = (pick: (f: IdleFigures) => number) =>
      server === "mailgate" || !base ? "" : ratio(pick(base) / pick(f));
    return [
      `\`${server}\``,
      String(f.runs),
      formatBytes(f.rssBefore),
      formatBytes(f.rssAfter1s),
      ...(settled ? [formatBytes(f.rssSettled)] : []),
      formatBytes(f.perConnectionAfter1s),
      ...(settled ? [formatBytes(f.perConnectionSettled), formatBytes(f.perConnectionLowest)] : []),
      versus((f) => f.perConnectionAfter1s),
      ...(settled ? [versus((f) => f.perConnectionSettled)] : []),
    ];
  });
  return table(header, rows);
}

function idleNote(settleSeconds: number): string {
  return `The reading 1 s after the last connection was held catches a Node server while V8 still keeps the young-generation and old-space room that the flood of connections made it grow; V8's memory reducer can release part of it once allocation has stopped for several seconds, so the reading at the end of the ${settleSeconds} s window is what the server keeps while it holds the connections idle (issue 7's target uses that one; a lowest reading below it means that RSS rose again within the window).`;
}

/** The first cells of a 2 KB scenario's row in the summary tables. */
function describe2k(s: MessageScenario): string[] {
  return [
    String(s.sessions),
    s.perConnection === "one" ? "one" : "many",
    s.pipelining ? "yes (load client)" : `no (${s.generator === "load" ? "load client" : "smtp-source"})`,
  ];
}

const HEADER_2K = ["sessions", "messages per connection", "PIPELINING"];

function results2k(results: ScenarioResult[]): ScenarioResult[] {
  return results.filter((r) => r.scenario.kind === "messages" && r.scenario.group === "2k");
}

/** `mailgate serve` against the disk's ceiling, per 2 KB scenario that measured both. */
function serveVersusDiskCeiling(results: ScenarioResult[]): string {
  const body: string[][] = [];
  for (const r of results2k(results)) {
    const serve = messageFigures(r, "mailgate-serve");
    const ceiling = diskCeilingFigures(r);
    if (!serve || !ceiling) continue;
    body.push([
      ...describe2k(r.scenario as MessageScenario),
      int(serve.messagesPerSecond),
      int(ceiling.filesPerSecond),
      ratio(serve.messagesPerSecond / ceiling.filesPerSecond),
    ]);
  }
  if (body.length === 0) return "";
  return table(
    [...HEADER_2K, "`mailgate-serve` msg/s", "disk ceiling files/s (writers = sessions)", "serve ÷ ceiling"],
    body,
  );
}

function summary2k(results: ScenarioResult[]): string {
  const rows = results2k(results);
  if (rows.length === 0) return "";
  const servers: ServerId[] = ["mailgate", "mailgate-serve", "smtp-server", "smtp-sink", "node-floor"];
  const versus: ServerId[] = ["smtp-server", "smtp-sink", "node-floor"];
  const body = rows.map((r) => {
    const s = r.scenario as MessageScenario;
    const rate = (id: ServerId) => messageFigures(r, id)?.messagesPerSecond ?? Number.NaN;
    return [
      ...describe2k(s),
      ...servers.map((id) => int(rate(id))),
      ...versus.map((id) => ratio(rate("mailgate") / rate(id))),
    ];
  });
  return table(
    [...HEADER_2K, ...servers.map((id) => `\`${id}\` msg/s`), ...versus.map((id) => `mailgate ÷ ${id}`)],
    body,
  );
}

/** Below the 2 KB summary when node-floor ran: what that reference is. */
function nodeFloorNote(results: ScenarioResult[]): string {
  if (!results2k(results).some((r) => messageFigures(r, "node-floor"))) return "";
  return "`node-floor` is a reference, not a peer: a minimal Node responder (`bench/node-floor.ts`: `net` sockets with noDelay, one write per batch of replies, no parsing beyond finding line ends and the end-of-data marker, nothing kept) that shows how much of each rate is loopback round trips and syscalls, which any Node server pays, so that `mailgate ÷ node-floor` tells how close mailgate comes to what a Node server can reach on this machine.";
}

// ---- sinks (issue 19) ----

/** Issue 21's pairs: each server in one process, and the same on 2 workers behind a primary. */
const WORKERS_PAIRS: { single: ServerId; workers: ServerId }[] = [
  { single: "mailgate", workers: "mailgate-workers2" },
  { single: "mailgate-serve", workers: "mailgate-serve-workers2" },
];

interface WorkersFigures {
  runs: number;
  rate: Spread;
  /** The server's processes' CPU time ÷ wall time (1.0 = one core busy). */
  cpu: Spread;
  /** The same per message, in microseconds. */
  cpuPerMessage: Spread;
  generatorCpu: number;
  /** The sum of each process's own VmHWM. */
  peakRss: Spread;
}

function workersFigures(result: ScenarioResult, server: ServerId): WorkersFigures | undefined {
  const samples = messageSamples(result, server);
  const over = (pick: (s: MessageSample) => number) => spread(samples.map(pick));
  return samples.length === 0
    ? undefined
    : {
        runs: samples.length,
        rate: over((s) => s.messagesPerSecond),
        cpu: over((s) => s.serverCpu),
        cpuPerMessage: over(cpuPerMessage),
        generatorCpu: median(samples.map((s) => s.generatorCpu)),
        peakRss: over((s) => s.peakRss),
      };
}

/** "## Workers": 1 process against 2 workers, the discarding hook and `mailgate serve`, and what that shows here. */
function workersSection(report: BenchReport): string {
  const result = report.results.find((r) => r.scenario.id === SINK_SCENARIO);
  if (!result) return "";
  const rows: string[][] = [];
  let singleBusy: number | undefined;
  for (const pair of WORKERS_PAIRS) {
    const two = workersFigures(result, pair.workers);
    if (!two) continue;
    const one = workersFigures(result, pair.single);
    singleBusy ??= one && one.cpu.median + one.generatorCpu;
    const row = (
      server: ServerId,
      processes: string,
      f: WorkersFigures,
      base: WorkersFigures | undefined,
    ) => [
      `\`${server}\``,
      processes,
      String(f.runs),
      showSpread(f.rate),
      base ? ratio(f.rate.median / base.rate.median) : "",
      showSpread(f.cpu, percent),
      showSpread(f.cpuPerMessage),
      base ? ratio(f.cpuPerMessage.median / base.cpuPerMessage.median) : "",
      percent(f.generatorCpu),
      showSpread(f.peakRss, formatBytes),
    ];
    if (one) rows.push(row(pair.single, "1", one, undefined));
    rows.push(row(pair.workers, "3 (primary + 2 workers)", two, one));
  }
  if (rows.length === 0) return "";
  const cores = report.machine.cores;
  const busy =
    singleBusy === undefined
      ? ""
      : ` With one server process, the server and the generator together kept ${percent(singleBusy)} of a core busy (medians; ${cores * 100}% is every core).`;
  const lines = [
    "## Workers (issue 21): 1 process against 2 workers",
    "",
    `Scenario \`${SINK_SCENARIO}\` (${result.scenario.title}), the servers' order rotating run by run. Medians of the runs, with the lowest and highest in brackets. For the servers with workers, server CPU and peak RSS are **summed over the primary and its workers** (their pids read from \`/proc/<primary>/task/*/children\`); peak RSS is the sum of each process's own peak, an upper bound of their peak together. ÷ 1 process compares with the same server in one process in the same run. ${runLine(report)}`,
    "",
    ...sharedMachineNote(report),
    table(
      [
        "server",
        "processes",
        "runs",
        "msg/s",
        "÷ 1 process",
        "server CPU (100% = one core)",
        "server CPU µs/msg",
        "÷ 1 process",
        "generator CPU",
        "peak RSS (summed)",
      ],
      rows,
    ),
    "",
    `**What this machine can show, and what it cannot.** It has ${cores} cores, and the generator (one \`smtp-source\` process driving the 100 sessions) runs on the same cores, beside whatever else the load average shows.${busy} A second worker finds no core of its own: the primary, both workers and the generator share the same ${cores}, so **msg/s here cannot show how far workers scale on free cores**. A rate gained here comes from waits that two processes overlap (\`mailgate serve\` waits on the disk's fsyncs, see the disk ceiling above: two workers have two Maildir writer threads, but still one disk), a rate lost from the extra processes competing with the generator and the machine's other work for the same cores. What the runs do show: (1) **CPU per message summed over all processes**, the cost of the design itself (the primary accepting each connection paused, counting it, passing the socket to a worker over IPC and hearing when the session ends; each worker's own event loop, GC and, for \`mailgate serve\`, Maildir writer thread), so that "÷ 1 process" of CPU µs/msg is the overhead of workers per message, start-up included: each worker warms up its own JIT, the warm-up before a run (at most ${int(report.settings.warmup)} messages) is shared between the workers, and a short run weighs that more; here each connection carries many messages (100 connections per run), so the primary's per-connection work is spread thin, and one message per connection would weigh it more (not measured); (2) what the extra processes cost in memory; (3) that every message a client got a 250 for is counted by the workers (summed by the primary) or stored in the Maildir the workers share: each run checks the count. What would show the speed-up: the same command where the generator has cores of its own (another machine, or at least 4 cores here) and one process keeps a core busy; only then can a second worker use a second core.`,
    "",
  ];
  lines.push("Commands of the servers with workers (PORT and `<run>` differ from run to run):", "");
  for (const { workers } of WORKERS_PAIRS) {
    const command = (result.samples[workers]?.[0] as MessageSample | undefined)?.command;
    if (command) lines.push(`- \`${workers}\`: \`${command}\``);
  }
  lines.push("");
  return lines.join("\n");
}

interface Target {
  what: string;
  measured: string;
  /** Undefined for a figure shown beside the targets for information, not required by issue 7. */
  required: string | undefined;
  met: boolean | undefined;
}

function targets(results: ScenarioResult[]): Target[] {
  const find = (id: string) => results.find((r) => r.scenario.id === id);
  const rate = (id: string, server: ServerId) => {
    const r = find(id);
    return r ? (messageFigures(r, server)?.messagesPerSecond ?? Number.NaN) : Number.NaN;
  };
  const list: Target[] = [];
  const ratioTarget = (what: string, value: number, min: number, lowerIsBetter = false) => {
    list.push({
      what,
      measured: ratio(value),
      required: `${lowerIsBetter ? "≤" : "≥"} ${min}x`,
      met: Number.isFinite(value) ? (lowerIsBetter ? value <= min : value >= min) : undefined,
    });
  };
  const informative = (what: string, value: number) => {
    list.push({ what, measured: ratio(value), required: undefined, met: undefined });
  };
  /** Beside a target against smtp-server: how far the C reference and the Node floor themselves get. */
  const references = (id: string, what: string) => {
    for (const reference of ["node-floor", "smtp-sink"] as const) {
      informative(`${what}: ${reference} ÷ smtp-server`, rate(id, reference) / rate(id, "smtp-server"));
    }
  };
  const many = "2k-s100-many-nopipe";
  ratioTarget(
    "2 KB, 100 sessions, many per connection (smtp-source): mailgate ÷ smtp-server",
    rate(many, "mailgate") / rate(many, "smtp-server"),
    2,
  );
  references(many, "the same scenario");
  ratioTarget(
    "2 KB, 100 sessions, many per connection (smtp-source): mailgate ÷ smtp-sink",
    rate(many, "mailgate") / rate(many, "smtp-sink"),
    0.8,
  );
  const one = "2k-s100-one-nopipe";
  ratioTarget(
    "2 KB, 100 sessions, one per connection (smtp-source): mailgate ÷ smtp-sink",
    rate(one, "mailgate") / rate(one, "smtp-sink"),
    0.5,
  );
  const single = "2k-s1-many-nopipe";
  ratioTarget(
    "2 KB, 1 session, many per connection (smtp-source): mailgate ÷ smtp-server",
    rate(single, "mailgate") / rate(single, "smtp-server"),
    1.3,
  );
  references(single, "the same scenario");
  const large = find("50m");
  if (large) {
    const ours = messageFigures(large, "mailgate-stream");
    const peer = messageFigures(large, "smtp-server");
    ratioTarget(
      "50 MB messages: mailgate (stream hook) MB/s ÷ smtp-server MB/s",
      (ours?.mbPerSecond ?? Number.NaN) / (peer?.mbPerSecond ?? Number.NaN),
      1.5,
    );
    list.push({
      what: "50 MB messages: mailgate (stream hook) peak RSS",
      measured: ours ? formatBytes(ours.peakRss) : "n/a",
      required: "< 100 MB",
      met: ours ? ours.peakRss < 100 * 2 ** 20 : undefined,
    });
  }
  const huge = find("1g");
  if (huge) {
    const ours = messageFigures(huge, "mailgate-stream");
    list.push({
      what: `${(huge.scenario as MessageScenario).bodyBytes >= 2 ** 30 ? "1 GB" : formatBytes((huge.scenario as MessageScenario).bodyBytes)} message through the streaming hook: peak RSS`,
      measured: ours ? formatBytes(ours.peakRss) : "n/a",
      required: "< 100 MB",
      met: ours ? ours.peakRss < 100 * 2 ** 20 : undefined,
    });
  }
  const idle = find("idle");
  if (idle) {
    const { settleSeconds } = idle.scenario as IdleScenario;
    const versusPeer = (pick: (f: IdleFigures) => number) => {
      const ours = idleFigures(idle, "mailgate");
      const peer = idleFigures(idle, "smtp-server");
      return (ours ? pick(ours) : Number.NaN) / (peer ? pick(peer) : Number.NaN);
    };
    ratioTarget(
      `Idle connections: mailgate RSS per connection ÷ smtp-server's, settled (${settleSeconds > 0 ? `after ${settleSeconds} s` : "not measured: --idle-settle 0"})`,
      versusPeer((f) => f.perConnectionSettled),
      0.5,
      true,
    );
    informative(
      "Idle connections: the same, 1 s after the last connection was held",
      versusPeer((f) => f.perConnectionAfter1s),
    );
  }
  ratioTarget(
    "`mailgate serve` (fsynced Maildir), 100 sessions, many per connection: ÷ discarding hook",
    rate(many, "mailgate-serve") / rate(many, "mailgate"),
    0.5,
  );
  const manyResult = find(many);
  const ceiling = manyResult ? diskCeilingFigures(manyResult) : undefined;
  informative(
    "mailgate serve ÷ disk ceiling for one fsync per file (100 sessions, many per connection)",
    rate(many, "mailgate-serve") / (ceiling?.filesPerSecond ?? Number.NaN),
  );
  return list;
}

function commandsSection(report: BenchReport): string {
  const lines = [
    "## Commands",
    "",
    "```sh",
    `npm run bench${report.settings.argv.length ? ` -- ${report.settings.argv.map(shellQuote).join(" ")}` : ""}`,
    "```",
    "",
    "Servers (a fresh child process per run; PORT chosen at start):",
    "",
  ];
  const seen = new Set<ServerId>();
  for (const result of report.results) {
    for (const [id, samples] of Object.entries(result.samples) as [
      ServerId,
      (MessageSample | IdleSample)[],
    ][]) {
      if (seen.has(id) || !samples?.[0]) continue;
      seen.add(id);
      // smtp-sink's address argument (not a sink URL's broker address).
      const command = samples[0].command.replace(/ 127\.0\.0\.1:\d+ /, " 127.0.0.1:PORT ");
      lines.push(`- \`${id}\`: ${SERVER_SPECS[id].description}.  `, `  \`${command}\``);
    }
  }
  lines.push("", "Generators (one child process per run):", "");
  for (const result of report.results) {
    const s = result.scenario;
    if (s.kind === "idle") {
      lines.push(
        `- \`${s.id}\`: \`node build/bench/load.js '{"mode":"idle","port":PORT,"connections":${s.connections}}'\``,
      );
    } else if (s.generator === "smtp-source") {
      lines.push(
        `- \`${s.id}\`: \`/usr/sbin/smtp-source ${smtpSourceArgs(s, s.messages, "PORT").join(" ")}\``,
      );
    } else {
      const request = {
        mode: "messages",
        port: "PORT",
        sessions: s.sessions,
        messages: s.messages,
        perConnection: s.perConnection,
        pipelining: s.pipelining,
        bodyBytes: s.bodyBytes,
      };
      lines.push(
        `- \`${s.id}\`: \`node build/bench/load.js '${JSON.stringify(request).replace('"PORT"', "PORT")}'\``,
      );
    }
  }
  const probes = report.results.filter((r) => r.diskCeilings.length > 0);
  if (probes.length > 0) {
    lines.push("", "Disk-ceiling probe (right before each `mailgate-serve` run of these scenarios):", "");
    const script = relative(REPO_ROOT, FSYNC_CEILING_SCRIPT);
    for (const result of probes) {
      const { writers, files, bytes } = result.diskCeilings[0] as DiskCeilingSample;
      const request = { directory: ".bench-tmp/maildir/<run>", writers, files, bytes };
      lines.push(`- \`${result.scenario.id}\`: \`node ${script} '${JSON.stringify(request)}'\``);
    }
  }
  lines.push(
    "",
    "(`-m` / `messages` is lowered for a server whose runs would exceed the time cap; the tables show the count used.)",
  );
  return lines.join("\n");
}

const METHOD = `## Method

- Every figure is the **median** of the runs shown (\`messages x runs\`); each run starts a **fresh server
  child process** on 127.0.0.1, so its peak RSS (VmHWM from \`/proc/<pid>/status\`) is that run's alone.
  A server with workers is its primary and their processes: its CPU time and peak RSS are summed over them.
  Servers are interleaved run by run (the order rotates) so that background noise spreads over all of them.
- Each measured 2 KB run is preceded, on the same fresh server, by an unmeasured warm-up (the same scenario
  with at most a fifth of the run's messages), so that a Node server's JIT is warm as in a long-running server.
- Before the measured runs of a scenario, each server gets calibration runs (discarded: they double as a
  warm-up of the kernel and the disk cache); when a server would need more than the time cap per run for the
  scenario's message count, its count is lowered to what fits (the column \`messages x runs\` says so).
- Every run is checked: the generator must have had every message answered 250, and the server must report
  exactly that many messages (the Node sinks count in their hook, \`node-floor\` at each end of data,
  \`mailgate serve\` files in \`new/\`, smtp-sink its \`-c\` counter). A run that fails this breaks the
  benchmark (exit status 1); timings never do.
- **messages/s** counts from the generator's first connect to its last reply (smtp-source: wall time of the
  process). **MB/s** is message bytes (headers and body, 1 MB = 2^20 bytes) per second. **server CPU** and
  **generator CPU** are CPU time ÷ wall time (100% = one core busy; the machine's cores are shared by the
  server and the generator: a generator near 100% means the figure is the generator's limit, not the server's).
  **server CPU µs/msg** is the server's CPU time per message: the cost of the code, less sensitive to a busy
  machine than the rates (Node servers also count their GC and libuv threads there; \`mailgate serve\` its
  fsyncs).
- \`mailgate serve\` keeps every Maildir until the end of the benchmark (then removes them; a full run needs a
  few GB of free disk meanwhile): ext4 scans past recently freed inodes when it creates files, so deleting a
  Maildir between runs made the next runs' deliveries several times more expensive in kernel time. For the
  same reason, what an interrupted benchmark left in \`.bench-tmp/maildir\` is moved aside at the start (a
  rename) and removed at the end.
- Generators: Postfix's \`smtp-source\` for the 2 KB scenarios without PIPELINING (it never pipelines: it says
  HELO and awaits every reply), our load client \`bench/load.ts\` (raw sockets, one child process) for
  PIPELINING (MAIL+RCPT+DATA in one write, then the message, its dot and the next MAIL+RCPT+DATA or QUIT in one
  write), for large messages (written in 1 MiB buffers of 78-character lines with backpressure) and for idle
  connections (open, read the greeting, hold).
- **Idle connections**: RSS per connection = (VmRSS while every connection is held − VmRSS before the first)
  ÷ connections, read the same way for every server: 1 s after the last greeting was read, then every second
  until the end of the settle window (\`--idle-settle\`, 25 s by default; the table names the one used; the raw
  results keep every reading). The 1 s reading includes, for a Node server, heap that V8 committed while the
  connections' objects were allocated and has not released yet (its young generation grows from 2 to 32 MB,
  which does not scale with the count, and old space keeps room beyond its live objects); the reading at the
  end of the window is the settled figure, which issue 7's target uses. Either is only meaningful for
  thousands of connections (not for a quick run's few hundred). A run breaks if the server closed any of the
  connections before the end of the window.
- **Disk ceiling** (next to \`mailgate serve\`): right before each \`mailgate-serve\` run of a 2 KB scenario, a
  child (\`bench/fsync-ceiling.ts\`) stores files as \`src/store/maildir.ts\` does, with the same \`node:fs/promises\` calls (open in \`tmp/\` with "wx", write the message as the
  generator sends it, fsync, close, rename into \`new/\`; the files of \`mailgate serve\` are some 190 bytes larger, with its Received and
  envelope headers), with as many concurrent writers as the scenario has sessions, in a fresh directory
  beside the run's Maildir (same file system; removed with the Maildirs at the end). It leaves out the shared
  (group-commit) fsync of \`new/\` that \`mailgate serve\` adds after the renames. files/s = files ÷ wall time
  from the first open to the last rename; the figure is the median of as many probes as runs. Both figures
  depend on what the file system did in the minutes before: on ext4 without a journal (the project's benchmark
  machine has one), for some minutes after many files were deleted, each file created costs
  up to ~0.7 ms of kernel CPU (ext4's scan for recently deleted inodes, seen with \`perf\`), so do not delete
  many files (say, an old Maildir or a test run's temporary directories) right before a run.
- Server settings: every limit raised to fit the largest scenario (connections and processings, message size
  unlimited), and every session timeout raised to the same ${SESSION_TIMEOUT_SECONDS} s (mailgate's \`ioCmdTimeout\`, 30 s
  by default; smtp-server's \`socketTimeout\`, 60 s; smtp-sink's \`-t\`, 100 s) so that none closes the idle
  scenario's connections during its settle window. \`mailgate\` and \`mailgate-stream\`: PIPELINING on,
  logging at warn. \`mailgate serve\`: its defaults otherwise, including one log line per stored message (to a
  file). \`smtp-server\`: \`disabledCommands: ["AUTH", "STARTTLS"]\`, \`authOptional\`, \`disableReverseLookup\`, \`logger: false\`, no
  \`size\` (it has no limit then). Note that smtp-server **always waits 100 ms before its greeting** (an
  early-talker check hard-coded in \`smtp-connection.js\`, not an option), which caps one-message-per-connection
  runs at about 10 messages/s per session; it is kept, as every user of smtp-server gets it. \`smtp-sink\`:
  \`-c\` (its running counter, written to a file, is how the benchmark verifies its count; it costs it a
  write(2) per update), \`-m\` raised, \`-u nobody\` when run as root.`;

export function renderReport(report: BenchReport): string {
  const { machine, settings } = report;
  const out: string[] = ["# Benchmarks", ""];
  if (settings.quick) {
    out.push(
      "> **Quick smoke run** (`npm run bench -- --quick`): small counts and one run per figure, to check that",
      "> the harness works. These are not the reference figures; `npm run bench` (the full run) replaces them.",
      "",
    );
  }
  if (settings.profile) {
    out.push(
      "> The mailgate children ran under `--cpu-prof` (`--profile`): their figures are lower than without it.",
      "",
    );
  }
  out.push(
    `Run on ${report.started.toISOString().replace("T", " ").slice(0, 16)} UTC, ${Math.round((report.finished.getTime() - report.started.getTime()) / 1000)} s in all.`,
    "",
    "| machine | |",
    "| --- | --- |",
    `| CPU | ${machine.cpu}, ${machine.cores} cores |`,
    `| memory | ${machine.memory} |`,
    `| kernel | Linux ${machine.kernel} |`,
    `| Node | ${machine.node} |`,
    `| mailgate | ${machine.mailgate} |`,
    `| smtp-server | ${machine.smtpServer} |`,
    `| Postfix (smtp-source, smtp-sink) | ${machine.postfix} |`,
    `| load average before / after | ${report.loadBefore.join(", ")} / ${report.loadAfter.join(", ")} |`,
    `| runs per figure; 2 KB messages per run; warm-up; time cap per run | ${settings.runs}; ${int(settings.messages)}; ${int(settings.warmup)} messages at most; ${settings.maxRunSeconds > 0 ? `${settings.maxRunSeconds} s` : "none"} |`,
    "",
    `A load average well above ${Math.min(machine.cores, 2)} (this benchmark's own server and generator) means other programs shared`,
    "the machine and the figures are noisy; ratios taken in the same run, and server CPU per message, are more",
    "robust than absolute rates.",
    "",
    "## Targets (issue 7)",
    "",
    table(
      ["target", "measured", "required", "met"],
      targets(report.results).map((t) =>
        t.required === undefined
          ? [t.what, t.measured, "(informative)", ""]
          : [t.what, t.measured, t.required, t.met === undefined ? "n/a" : t.met ? "yes" : "**no**"],
      ),
    ),
    "",
    "The `node-floor ÷ smtp-server` and `smtp-sink ÷ smtp-server` rows beside a target show where the least work a Node server can do (see `node-floor` below) and Postfix's C sink get in the same run: a ratio above both is beyond what answering these clients costs on this machine, where the server and the generator share two cores.",
    "",
  );
  const summary = summary2k(report.results);
  if (summary) out.push("## 2 KB messages at a glance (messages/s, medians)", "", summary, "");
  const floorNote = nodeFloorNote(report.results);
  if (floorNote) out.push(floorNote, "");
  const ceilings = serveVersusDiskCeiling(report.results);
  if (ceilings) {
    out.push(
      "## `mailgate serve` and the disk's fsync ceiling (medians)",
      "",
      "The ceiling is what the disk allows for one fsync per file (open, write, fsync, close, rename: the store's sequence, see Method), measured right before each `mailgate-serve` run with as many writers as the scenario has sessions.",
      "",
      ceilings,
      "",
    );
  }
  const sinks = sinksSection(report.results, report);
  if (sinks) out.push(sinks);
  const workers = workersSection(report);
  if (workers) out.push(workers);
  const engine = engineSection(report.results, report);
  if (engine) out.push(engine);
  out.push("## Scenarios", "");
  for (const result of report.results) out.push(scenarioSection(result), "");
  out.push(METHOD, "", commandsSection(report), "");
  return out.join("\n");
}
