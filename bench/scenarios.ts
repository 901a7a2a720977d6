/**
 * The scenarios of issue 7 and how one run of one scenario against one server is measured.
 *
 * Every run starts a FRESH server child, drives it with a generator child (Postfix's smtp-source, or our
 * load client bench/load.ts), reads the server's VmHWM/VmRSS and CPU time from /proc (summed over its
 * process and its children: a primary and its workers), then asks the server how many messages it
 * accepted: a count that differs from what the generator had answered 250 breaks the run (timings never do).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { PublishRequest, PublishResult } from "./direct-publish.js";
import type { FsyncCeilingRequest, FsyncCeilingResult } from "./fsync-ceiling.js";
import type { LoadResult, MessageLoad } from "./load.js";
import { messageShape } from "./load.js";
import {
  maildirFor,
  type RunningServer,
  type ServerId,
  type SinkServerId,
  startServer,
  type WorkersServerId,
} from "./servers.js";
import { SINK_BACKENDS, type SinkBackend, type SinkDestination, sinkBackend } from "./sink-backends.js";
import { exited, HOST, MiB, REPO_ROOT, readChildrenCpuSeconds, sleep, spawnWithFiles } from "./util.js";

export type Generator = "smtp-source" | "load";

export interface MessageScenario {
  kind: "messages";
  id: string;
  title: string;
  /** Which table it belongs to. */
  group: "2k" | "50m" | "1g";
  generator: Generator;
  sessions: number;
  perConnection: "one" | "many";
  pipelining: boolean;
  /** Messages per run (the time cap may lower it, see run.ts). */
  messages: number;
  /** Payload bytes after the headers (smtp-source -l). */
  bodyBytes: number;
  servers: ServerId[];
}

export interface IdleScenario {
  kind: "idle";
  id: string;
  title: string;
  connections: number;
  /**
   * Seconds the connections stay held while the server's RSS is read every second (0: only the reading
   * 1 s after the last connection was held).
   */
  settleSeconds: number;
  servers: ServerId[];
}

export type Scenario = MessageScenario | IdleScenario;

export interface ScenarioConfig {
  /** 2 KB messages per scenario (issue 7: 20,000). */
  messages: number;
  /** The 50 MB scenario: how many messages, and their size in MiB. */
  largeCount: number;
  largeMiB: number;
  /** The streaming scenario's one message, in MiB (1024 = 1 GB). */
  hugeMiB: number;
  /** Idle connections (issue 7: 5,000). */
  idleConnections: number;
  /** How long the idle scenario watches the server's RSS settle, in seconds (see IdleScenario). */
  idleSettleSeconds: number;
  /** Who sends the non-pipelined 2 KB scenarios (smtp-source by default; it cannot pipeline). */
  plainGenerator: Generator;
}

/** node-floor is a reference for the 2 KB scenarios only (see bench/node-floor.ts). */
const SMALL_SERVERS: ServerId[] = ["mailgate", "mailgate-serve", "smtp-server", "smtp-sink", "node-floor"];
/**
 * The stream hook beside the buffered one (issue 18), in the scenarios without PIPELINING, many per
 * connection, with node-floor's streaming twin as their reference.
 */
const STREAM_SERVERS: ServerId[] = ["mailgate-stream", "mailgate-stream-events", "node-floor-stream"];
/**
 * `mailgate serve --sink` (issue 19), and `mailgate serve` into nothing beside them (what of their CPU is
 * not the sink's): in the scenario issue 19 names only, to keep the run short.
 */
const SINK_SERVERS: ServerId[] = ["mailgate-serve-null", ...(Object.keys(SINK_BACKENDS) as SinkServerId[])];
/** 1 against 2 workers (issue 21): in the same scenario as the sinks, beside mailgate and mailgate-serve. */
const WORKERS_SERVERS: WorkersServerId[] = ["mailgate-workers2", "mailgate-serve-workers2"];

export function buildScenarios(config: ScenarioConfig): Scenario[] {
  const scenarios: Scenario[] = [];
  for (const pipelining of [false, true]) {
    for (const perConnection of ["many", "one"] as const) {
      for (const sessions of [1, 10, 100]) {
        const generator: Generator = pipelining ? "load" : config.plainGenerator;
        scenarios.push({
          kind: "messages",
          id: `2k-s${sessions}-${perConnection}-${pipelining ? "pipe" : "nopipe"}`,
          title: `2 KB messages, ${sessions} session${sessions === 1 ? "" : "s"}, ${perConnection === "one" ? "one message per connection" : "many messages per connection"}, ${pipelining ? "with" : "without"} PIPELINING (${generator === "load" ? "load client" : "smtp-source"})`,
          group: "2k",
          generator,
          sessions,
          perConnection,
          pipelining,
          messages: config.messages,
          bodyBytes: 2048,
          servers: [
            ...SMALL_SERVERS,
            ...(perConnection === "many" && !pipelining ? STREAM_SERVERS : []),
            ...(sessions === 100 && perConnection === "many" && !pipelining
              ? [...WORKERS_SERVERS, ...SINK_SERVERS]
              : []),
          ],
        });
      }
    }
  }
  scenarios.push({
    kind: "messages",
    id: "50m",
    title: `${config.largeCount} messages of ${config.largeMiB} MB, 1 session, PIPELINING (load client, 1 MiB writes)`,
    group: "50m",
    generator: "load",
    sessions: 1,
    perConnection: "many",
    pipelining: true,
    messages: config.largeCount,
    bodyBytes: config.largeMiB * MiB,
    servers: ["mailgate-stream", "mailgate", "mailgate-serve", "smtp-server", "smtp-sink"],
  });
  scenarios.push({
    kind: "idle",
    id: "idle",
    title: `${config.idleConnections} idle connections (greeting read, then held)`,
    connections: config.idleConnections,
    settleSeconds: config.idleSettleSeconds,
    servers: ["mailgate", "smtp-server", "smtp-sink"],
  });
  scenarios.push({
    kind: "messages",
    id: "1g",
    title: `One message of ${config.hugeMiB >= 1024 ? `${config.hugeMiB / 1024} GB` : `${config.hugeMiB} MB`} through the streaming hook (load client, 1 MiB writes)`,
    group: "1g",
    generator: "load",
    sessions: 1,
    perConnection: "one",
    pipelining: true,
    messages: 1,
    bodyBytes: config.hugeMiB * MiB,
    servers: ["mailgate-stream", "smtp-server", "smtp-sink"],
  });
  return scenarios;
}

export interface RunContext {
  maxConnections: number;
  profileDir?: string;
  /** Unique per run, for logs and Maildirs. */
  tag: string;
  /** A generator that runs longer than this is killed and the run fails. */
  timeoutMs: number;
}

export interface MessageSample {
  server: ServerId;
  /** How the server was started. */
  command: string;
  messages: number;
  elapsedMs: number;
  messagesPerSecond: number;
  /** MiB of message (headers and body) per second. */
  mbPerSecond: number;
  peakRss: number;
  /** Server CPU time / elapsed time (1.0 = one core busy). */
  serverCpu: number;
  /** Generator CPU time / elapsed time. */
  generatorCpu: number;
}

export interface IdleSample {
  server: ServerId;
  command: string;
  connections: number;
  /** VmRSS before the first connection. */
  rssBefore: number;
  /**
   * VmRSS every second while the connections are held: [0] 1 s after the last one was held, the last
   * entry at the end of the settle window.
   */
  rssEverySecond: number[];
  /** (VmRSS 1 s after the last connection was held − rssBefore) ÷ connections. */
  perConnectionAfter1s: number;
  /** (VmRSS at the end of the settle window − rssBefore) ÷ connections; absent without a window. */
  perConnectionSettled?: number;
  /** The lowest reading of the window, per connection as above; absent without a window. */
  perConnectionLowest?: number;
  peakRss: number;
}

/** One run of a sink's direct publisher (bench/direct-publish.ts), right before a run of its server. */
export interface SinkCeilingSample {
  command: string;
  messages: number;
  elapsedMs: number;
  messagesPerSecond: number;
  /** The publisher's own CPU time ÷ wall time (1.0 = one core busy). */
  publisherCpu: number;
}

/** One run of the disk-ceiling probe (bench/fsync-ceiling.ts). */
export interface DiskCeilingSample extends FsyncCeilingResult {
  writers: number;
  bytes: number;
}

export const SMTP_SOURCE_PATH = "/usr/sbin/smtp-source";
const LOAD_SCRIPT = join(REPO_ROOT, "build", "bench", "load.js");
export const FSYNC_CEILING_SCRIPT = join(REPO_ROOT, "build", "bench", "fsync-ceiling.js");
const DIRECT_PUBLISH_SCRIPT = join(REPO_ROOT, "build", "bench", "direct-publish.js");
/** smtp-source's own headers (From, To, Date, Message-Id) and the CRLF ending its last line. */
const SMTP_SOURCE_OVERHEAD = 116;
const LOAD_CLIENT = "the load client";

export function smtpSourceArgs(
  scenario: Pick<MessageScenario, "sessions" | "perConnection" | "bodyBytes">,
  messages: number,
  port: number | string,
): string[] {
  return [
    "-s",
    String(scenario.sessions),
    "-m",
    String(messages),
    ...(scenario.perConnection === "many" ? ["-d"] : []),
    "-l",
    String(scenario.bodyBytes),
    "-f",
    "a@x.test",
    "-t",
    "b@y.test",
    `${HOST}:${port}`,
  ];
}

export function loadRequest(
  scenario: MessageScenario,
  messages: number,
  port: number,
): { mode: "messages" } & MessageLoad {
  return {
    mode: "messages",
    port,
    sessions: scenario.sessions,
    messages,
    perConnection: scenario.perConnection,
    pipelining: scenario.pipelining,
    bodyBytes: scenario.bodyBytes,
  };
}

function killAfter(
  child: ChildProcess,
  ms: number,
  what: string,
): { cancel(): void; expired: Promise<never> } {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${what} ran longer than ${ms / 1000} s and was killed`));
    }, ms);
  });
  expired.catch(() => {});
  return { cancel: () => clearTimeout(timer), expired };
}

async function runSmtpSource(
  scenario: MessageScenario,
  messages: number,
  port: number,
  context: RunContext,
): Promise<LoadResult> {
  const cpu0 = readChildrenCpuSeconds();
  const t0 = process.hrtime.bigint();
  const child = spawn(SMTP_SOURCE_PATH, smtpSourceArgs(scenario, messages, port), {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const limit = killAfter(child, context.timeoutMs, "smtp-source");
  const code = await Promise.race([exited(child), limit.expired]);
  limit.cancel();
  const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (code !== 0)
    throw new Error(`smtp-source failed (${code}): ${stderr.trim().split("\n").slice(-3).join(" / ")}`);
  const cpuMs = (readChildrenCpuSeconds() - cpu0) * 1000;
  return { sent: messages, bytes: messages * (scenario.bodyBytes + SMTP_SOURCE_OVERHEAD), elapsedMs, cpuMs };
}

/** Starts `node script 'request'` with an IPC channel, room for `files` open files and `env` added. */
function nodeChild(
  script: string,
  request: object,
  files: number,
  env: Record<string, string> = {},
): ChildProcess {
  return spawnWithFiles(process.execPath, [script, JSON.stringify(request)], files, {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    env: { ...process.env, ...env },
  });
}

/** Resolves with the child's next IPC message of this type; rejects on its { type: "error" } or exit. */
function nextMessage(child: ChildProcess, type: string, who: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: Record<string, unknown>) => {
      if (message?.type === type) {
        cleanup();
        resolve(message);
      } else if (message?.type === "error") {
        cleanup();
        reject(new Error(`${who}: ${String(message.message)}`));
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`${who} exited (${code}) before "${type}"`));
    };
    const cleanup = () => {
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    child.on("message", onMessage);
    child.on("exit", onExit);
  });
}

/** Runs `node script 'request'` to its end and returns its { type: "result" } message. */
async function runToResult(
  script: string,
  request: object,
  files: number,
  who: string,
  context: RunContext,
  env: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const child = nodeChild(script, request, files, env);
  const limit = killAfter(child, context.timeoutMs, who);
  try {
    const result = await Promise.race([nextMessage(child, "result", who), limit.expired]);
    await exited(child);
    return result;
  } finally {
    limit.cancel();
    child.kill("SIGKILL");
  }
}

async function runLoad(
  scenario: MessageScenario,
  messages: number,
  port: number,
  context: RunContext,
): Promise<LoadResult> {
  const request = loadRequest(scenario, messages, port);
  const result = await runToResult(LOAD_SCRIPT, request, scenario.sessions + 256, LOAD_CLIENT, context);
  return result as unknown as LoadResult;
}

/**
 * One run: a fresh server, `warmup` messages first (same sessions and mode, not measured: the JIT of a
 * Node server warms up as a long-running server's would have), then `messages` measured ones, the
 * server's memory and CPU, and the count check.
 */
export async function measureMessages(
  scenario: MessageScenario,
  serverId: ServerId,
  messages: number,
  context: RunContext,
  warmup = 0,
): Promise<MessageSample> {
  const backend = sinkBackend(serverId);
  const sink = backend ? await backend.prepare(context) : undefined;
  try {
    return await measureServer(
      scenario,
      serverId,
      messages,
      { ...context, ...(sink ? { sink } : {}) },
      warmup,
    );
  } finally {
    await sink?.dispose();
  }
}

async function measureServer(
  scenario: MessageScenario,
  serverId: ServerId,
  messages: number,
  context: RunContext & { sink?: SinkDestination },
  warmup: number,
): Promise<MessageSample> {
  const server = await startServer(serverId, context);
  const generate = (count: number) =>
    scenario.generator === "smtp-source"
      ? runSmtpSource(scenario, count, server.port, context)
      : runLoad(scenario, count, server.port, context);
  try {
    if (warmup > 0) {
      const warm = await generate(warmup);
      if (warm.sent !== warmup)
        throw new Error(`warm-up: ${warmup} messages sent, ${warm.sent} answered 250`);
    }
    const cpu0 = server.cpuSeconds();
    const result = await generate(messages);
    const memory = server.memory();
    const serverCpu = server.cpuSeconds() - cpu0;
    const received = await server.finish();
    if (result.sent !== messages || received !== warmup + messages) {
      throw new Error(
        `${warmup} + ${messages} messages sent, ${warmup} + ${result.sent} answered 250, ${received} counted by ${serverId}`,
      );
    }
    const seconds = result.elapsedMs / 1000;
    return {
      server: serverId,
      command: server.command,
      messages,
      elapsedMs: result.elapsedMs,
      messagesPerSecond: messages / seconds,
      mbPerSecond: result.bytes / MiB / seconds,
      peakRss: memory.peak,
      serverCpu: serverCpu / seconds,
      generatorCpu: result.cpuMs / 1000 / seconds,
    };
  } catch (error) {
    server.kill();
    throw error;
  }
}

/**
 * One idle run: a fresh server, its RSS before the first connection, then every second while
 * `connections` clients hold a session open: from 1 s after the last one was held (a Node server's V8 may
 * still keep the room the flood of connections made it grow) to the end of the settle window (what the
 * server keeps). Every connection must still be open at the end.
 */
export async function measureIdle(
  scenario: IdleScenario,
  serverId: ServerId,
  context: RunContext,
): Promise<IdleSample> {
  const server: RunningServer = await startServer(serverId, context);
  try {
    await sleep(500);
    const before = server.memory().current;
    const child = nodeChild(
      LOAD_SCRIPT,
      { mode: "idle", port: server.port, connections: scenario.connections },
      scenario.connections + 256,
    );
    const limit = killAfter(child, context.timeoutMs, LOAD_CLIENT);
    try {
      const held = await Promise.race([nextMessage(child, "held", LOAD_CLIENT), limit.expired]);
      if (held.held !== scenario.connections) throw new Error(`only ${String(held.held)} connections held`);
      const rssEverySecond = await readRssEverySecond(server, Math.max(1, scenario.settleSeconds));
      const peakRss = server.memory().peak;
      child.send({ type: "release" });
      const released = await Promise.race([nextMessage(child, "released", LOAD_CLIENT), limit.expired]);
      if (released.stillOpen !== scenario.connections) {
        throw new Error(
          `${serverId} closed ${scenario.connections - Number(released.stillOpen)} of the ${scenario.connections} idle connections while they were held`,
        );
      }
      await exited(child);
      await server.finish();
      const perConnection = (rss: number) => (rss - before) / scenario.connections;
      return {
        server: serverId,
        command: server.command,
        connections: scenario.connections,
        rssBefore: before,
        rssEverySecond,
        perConnectionAfter1s: perConnection(rssEverySecond[0] as number),
        ...(scenario.settleSeconds > 0
          ? {
              perConnectionSettled: perConnection(rssEverySecond.at(-1) as number),
              perConnectionLowest: perConnection(Math.min(...rssEverySecond)),
            }
          : {}),
        peakRss,
      };
    } finally {
      limit.cancel();
      child.kill("SIGKILL");
    }
  } catch (error) {
    server.kill();
    throw error;
  }
}

/** The server's VmRSS at 1, 2... `seconds` s from now (on a fixed schedule: reading takes no time from it). */
async function readRssEverySecond(server: RunningServer, seconds: number): Promise<number[]> {
  const start = performance.now();
  const readings: number[] = [];
  for (let second = 1; second <= seconds; second++) {
    await sleep(start + second * 1000 - performance.now());
    readings.push(server.memory().current);
  }
  return readings;
}

/**
 * The disk's ceiling for `mailgate serve`'s per-file sequence (bench/fsync-ceiling.ts) with `writers`
 * concurrent writers and `bytes` per file, in a directory beside the serve runs' Maildirs. Its files stay
 * until removeMaildirs(), as the Maildirs do.
 */
export async function measureDiskCeiling(
  writers: number,
  files: number,
  bytes: number,
  context: RunContext,
): Promise<DiskCeilingSample> {
  const request: FsyncCeilingRequest = { directory: maildirFor(context.tag), writers, files, bytes };
  const result = await runToResult(
    FSYNC_CEILING_SCRIPT,
    request,
    writers + 64,
    "the disk-ceiling probe",
    context,
  );
  const { elapsedMs, filesPerSecond } = result as unknown as FsyncCeilingResult;
  return { writers, bytes, files, elapsedMs, filesPerSecond };
}

/**
 * A sink's ceiling: its direct publisher (bench/direct-publish.ts) sends `warmup`, then `messages` of the
 * scenario's messages to a destination of its own, `scenario.sessions` in flight; the destination must
 * then hold them all.
 */
export async function measureSinkCeiling(
  backend: SinkBackend,
  scenario: MessageScenario,
  messages: number,
  warmup: number,
  context: RunContext,
): Promise<SinkCeilingSample> {
  const destination = await backend.prepare(context);
  try {
    const request: PublishRequest = {
      target: destination.publishTarget,
      warmup,
      messages,
      inFlight: scenario.sessions,
      bodyBytes: scenario.bodyBytes,
    };
    const who = `the ${backend.name} publisher`;
    const files = scenario.sessions + 256;
    const result = (await runToResult(
      DIRECT_PUBLISH_SCRIPT,
      request,
      files,
      who,
      context,
      destination.env,
    )) as unknown as PublishResult;
    const held = await destination.count();
    if (held !== warmup + messages) {
      throw new Error(
        `${warmup} + ${messages} messages published and confirmed, ${held} counted by ${backend.name}`,
      );
    }
    const shown = JSON.stringify(request)
      .replaceAll(context.tag, "<run>")
      .replace(/(http:\/\/127\.0\.0\.1:)\d+/, "$1PORT");
    const environment = Object.keys(destination.env).map((name) => `${name}=... `);
    return {
      command: `${environment.join("")}node build/bench/direct-publish.js '${shown}'`,
      messages,
      elapsedMs: result.elapsedMs,
      messagesPerSecond: messages / (result.elapsedMs / 1000),
      publisherCpu: result.cpuMs / result.elapsedMs,
    };
  } finally {
    await destination.dispose();
  }
}

/** The message size a generator sends, for the report. */
export function messageBytes(scenario: MessageScenario): number {
  return scenario.generator === "smtp-source"
    ? scenario.bodyBytes + SMTP_SOURCE_OVERHEAD
    : messageShape(scenario.bodyBytes).size;
}
