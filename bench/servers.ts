/**
 * The servers under test, each started as its own CHILD process (fresh for every run, so its VmHWM is
 * that run's peak) on 127.0.0.1, and each able to say how many messages it accepted.
 */
import type { ChildProcess } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
} from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import type { SinkKind } from "./sink.js";
import {
  BENCH_TMP,
  exited,
  freePort,
  HOST,
  MAILDIR_ROOT,
  type Memory,
  REPO_ROOT,
  readServerCpuSeconds,
  readServerMemory,
  SESSION_TIMEOUT_SECONDS,
  sleep,
  spawnWithFiles,
} from "./util.js";

export type ServerId =
  | "mailgate"
  | "mailgate-stream"
  | "mailgate-stream-events"
  | "mailgate-serve"
  | "mailgate-serve-null"
  | WorkersServerId
  | "smtp-server"
  | "smtp-sink"
  | "node-floor"
  | "node-floor-stream"
  | SinkServerId;

/** `mailgate serve --sink`: one server per sink of bench/sink-backends.ts. */
export type SinkServerId = "mailgate-serve-amqp" | "mailgate-serve-nats" | "mailgate-serve-http";

/** Issue 21: the discarding hook (runWorkers) and `mailgate serve --workers` on 2 worker processes. */
export type WorkersServerId = "mailgate-workers2" | "mailgate-serve-workers2";

/** The servers that store into a fresh Maildir of the run (the others into a sink or nowhere). */
type MaildirServerId = "mailgate-serve" | "mailgate-serve-workers2";

export interface ServerSpec {
  id: ServerId;
  /** What the server is, for the report. */
  description: string;
  /** True for the servers whose figures are "ours" (never for a reference such as node-floor). */
  ours: boolean;
}

export const SERVER_SPECS: Record<ServerId, ServerSpec> = {
  mailgate: {
    id: "mailgate",
    ours: true,
    description: "mailgate library, onMessageData hook that discards the buffered message",
  },
  "mailgate-stream": {
    id: "mailgate-stream",
    ours: true,
    description:
      "mailgate library, onMessageStream hook that drains the stream with `for await` (nothing buffered)",
  },
  "mailgate-stream-events": {
    id: "mailgate-stream-events",
    ours: true,
    description:
      "mailgate library, onMessageStream hook that drains the stream with 'data' and 'end' listeners (the engine's stream path without the async iterator's cost)",
  },
  "mailgate-serve": {
    id: "mailgate-serve",
    ours: true,
    description:
      "`mailgate serve`, the real CLI, storing every message in a fsynced Maildir (default logging)",
  },
  "mailgate-workers2": {
    id: "mailgate-workers2",
    ours: true,
    description:
      "the `mailgate` server (onMessageData hook that discards) on 2 worker processes behind a primary, with the exported `runWorkers()`; CPU and RSS summed over the three processes",
  },
  "mailgate-serve-workers2": {
    id: "mailgate-serve-workers2",
    ours: true,
    description:
      "`mailgate serve --workers 2`, the real CLI: a primary and 2 workers, each storing into the same fsynced Maildir (default logging); CPU and RSS summed over the three processes",
  },
  "mailgate-serve-amqp": {
    id: "mailgate-serve-amqp",
    ours: true,
    description:
      "`mailgate serve --sink amqp://...`, the real CLI, publishing every message to RabbitMQ (confirm channel, persistent, mandatory) into a quorum queue of the run's own, default logging",
  },
  "mailgate-serve-nats": {
    id: "mailgate-serve-nats",
    ours: true,
    description:
      "`mailgate serve --sink nats://...`, the real CLI, publishing every message to a JetStream stream of the run's own (file storage) and awaiting its PubAck, default logging",
  },
  "mailgate-serve-http": {
    id: "mailgate-serve-http",
    ours: true,
    description:
      "`mailgate serve --sink http://...`, the real CLI, POSTing every signed message to an endpoint in its own child process, with its default --sink-window (16 requests in flight), default logging",
  },
  "smtp-server": {
    id: "smtp-server",
    ours: false,
    description: "nodemailer's smtp-server, onData draining the stream (AUTH/STARTTLS off, no reverse DNS)",
  },
  "smtp-sink": {
    id: "smtp-sink",
    ours: false,
    description: "Postfix's smtp-sink (C), counting messages with -c",
  },
  "node-floor": {
    id: "node-floor",
    ours: false,
    description:
      "reference, not a peer: the least work a Node SMTP server can do per command (bench/node-floor.ts: net sockets, one write per batch of replies, only line ends and the end-of-data marker looked for, nothing kept)",
  },
  "mailgate-serve-null": {
    id: "mailgate-serve-null",
    ours: true,
    description:
      "`mailgate serve`'s server (the Received header, message id, session facts and log line of every store) into a store that reads each message whole and keeps nothing: the part of `mailgate serve --sink` that is not the sink's",
  },
  "node-floor-stream": {
    id: "node-floor-stream",
    ours: false,
    description:
      "reference, not a peer: node-floor that also hands each message to a Readable drained with `for await`, its 250 waiting for the drain (the least a Node server that streams messages to a consumer can do)",
  },
};

export interface StartOptions {
  /** Connections the server must hold at once (limits are raised to this). */
  maxConnections: number;
  /** Directory for --cpu-prof profiles of the mailgate children, if profiling. */
  profileDir?: string;
  /** A name unique to this run, for log files and the Maildir. */
  tag: string;
  /** For the mailgate-serve-<sink> servers: where their messages go in this run. */
  sink?: ServeSink;
}

/** Where `mailgate serve --sink` sends its messages in one run (bench/sink-backends.ts makes it). */
export interface ServeSink {
  /** The flags that name the sink (--sink URL and the like). */
  flags: string[];
  /** The same flags as the report shows them: the run's own names replaced by placeholders. */
  shownFlags: string[];
  /** Environment for `mailgate serve` (the sink's secret: never on its command line). */
  env: Record<string, string>;
  /** How many messages the sink holds now (the count check, as the Maildir's files are for serve). */
  count(): Promise<number>;
}

export interface RunningServer {
  id: ServerId | SinkKind;
  pid: number;
  port: number;
  /** The command line that started it (port shown as chosen). */
  command: string;
  memory(): Memory;
  cpuSeconds(): number;
  /** Ends the server and returns how many messages it accepted. */
  finish(): Promise<number>;
  /** Emergency stop (a broken run). */
  kill(): void;
}

export const SMTP_SINK_PATH = "/usr/sbin/smtp-sink";
const SINK_SCRIPT = join(REPO_ROOT, "build", "bench", "sink.js");
const CLI_SCRIPT = join(REPO_ROOT, "build", "src", "cli", "main.js");
const READY_TIMEOUT_MS = 20_000;
const EXIT_TIMEOUT_MS = 15_000;

/** Every server child still running, so that an interrupted benchmark leaves none behind. */
const live = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

/** Kills every server child still running (for SIGINT and the like). */
export function killAllServers(): void {
  for (const child of live) child.kill("SIGKILL");
}

/** Where the Maildirs of an interrupted benchmark wait for removeMaildirs(). */
const LEFTOVERS = join(BENCH_TMP, "maildir-leftovers");

/**
 * Removes the Maildirs that `mailgate serve` filled, the disk-ceiling probe's files and the leftovers set
 * aside at the start. Call it only at the END of a benchmark: ext4 without a journal avoids reusing inodes
 * freed in the last minute (six while their inode table block is unwritten), and after a mass
 * deletion every file creation scans past them (recently_deleted() in find_inode_bit(), seen with perf):
 * deleting a Maildir between runs tripled the kernel CPU time of the next runs' deliveries and halved
 * their rate.
 */
export function removeMaildirs(): void {
  rmSync(MAILDIR_ROOT, { recursive: true, force: true });
  rmSync(LEFTOVERS, { recursive: true, force: true });
}

/**
 * Moves the Maildirs of an interrupted benchmark (and anything else left in MAILDIR_ROOT) out of the way,
 * so that this one starts with it empty without a mass deletion (see removeMaildirs): a rename frees no
 * inode. removeMaildirs() at the end removes them.
 */
export function setAsideLeftoverMaildirs(): void {
  if (!existsSync(MAILDIR_ROOT)) return;
  mkdirSync(LEFTOVERS, { recursive: true });
  renameSync(MAILDIR_ROOT, join(LEFTOVERS, String(Date.now())));
}

/** The Maildir of the run tagged `tag` (the disk-ceiling probe writes beside them, in the same way). */
export function maildirFor(tag: string): string {
  return join(MAILDIR_ROOT, tag);
}

export function logDirectory(): string {
  const dir = join(BENCH_TMP, "logs");
  mkdirSync(dir, { recursive: true });
  return dir;
}

function tail(path: string): string {
  try {
    const text = readFileSync(path, "utf8").trim();
    return text === "" ? "(no output)" : text.split("\n").slice(-8).join("\n");
  } catch {
    return "(no log)";
  }
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals | null): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (signal) child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), EXIT_TIMEOUT_MS);
  await exited(child);
  clearTimeout(timer);
}

/** Fails fast with the log's tail when the child dies before it is ready. */
function failOnExit(child: ChildProcess, id: ServerId | SinkKind, logPath: string): Promise<never> {
  return exited(child).then((code) => {
    throw new Error(`${id} exited (${code}) before it was ready; its log says:\n${tail(logPath)}`);
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export async function startServer(id: ServerId, options: StartOptions): Promise<RunningServer> {
  switch (id) {
    case "mailgate":
    case "mailgate-stream":
    case "mailgate-stream-events":
    case "mailgate-workers2":
    case "smtp-server":
    case "mailgate-serve-null":
    case "node-floor":
    case "node-floor-stream":
      return startSink(id, options);
    case "mailgate-serve":
    case "mailgate-serve-workers2":
      return startServe(id, options);
    case "mailgate-serve-amqp":
    case "mailgate-serve-nats":
    case "mailgate-serve-http":
      return startServe(id, options);
    case "smtp-sink":
      return startSmtpSink(options);
  }
}

/** Open files a server needs: one per connection, plus the listener, logs, Maildir files and node's own. */
function filesFor(options: StartOptions): number {
  return options.maxConnections + 256;
}

function profileArgs(id: ServerId | SinkKind, options: StartOptions): string[] {
  const profiled = id in SERVER_SPECS && (SERVER_SPECS[id as ServerId].ours || id.startsWith("node-floor"));
  if (!options.profileDir || !profiled) return [];
  // Workers are forked with the primary's Node options: Node's default names (with the pid) keep their
  // profiles apart.
  const workers = id === "mailgate-workers2" || id === "mailgate-serve-workers2";
  return [
    "--cpu-prof",
    `--cpu-prof-dir=${options.profileDir}`,
    ...(workers ? [] : [`--cpu-prof-name=${options.tag}.cpuprofile`]),
  ];
}

/** A child of bench/sink.ts; `env` is added to its environment. */
export async function startSink(
  kind: SinkKind,
  options: StartOptions,
  env: Record<string, string> = {},
): Promise<RunningServer> {
  const logPath = join(logDirectory(), `${options.tag}.log`);
  const log = openSync(logPath, "w");
  const json = JSON.stringify({ maxConnections: options.maxConnections });
  const args = [...profileArgs(kind, options), SINK_SCRIPT, kind, json];
  const child = track(
    spawnWithFiles(process.execPath, args, filesFor(options), {
      stdio: ["ignore", log, log, "ipc"],
      env: { ...process.env, ...env },
    }),
  );
  closeSync(log);
  const counted = new Promise<number>((resolve) => {
    child.on("message", (message: { type?: string; messages?: number }) => {
      if (message?.type === "count") resolve(message.messages ?? 0);
    });
  });
  const ready = new Promise<number>((resolve) => {
    child.on("message", (message: { type?: string; port?: number }) => {
      if (message?.type === "ready") resolve(message.port ?? 0);
    });
  });
  let port: number;
  try {
    port = await withTimeout(
      Promise.race([ready, failOnExit(child, kind, logPath)]),
      READY_TIMEOUT_MS,
      `starting ${kind}`,
    );
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  const pid = child.pid as number;
  return {
    id: kind,
    pid,
    port,
    command: `node ${args.map((a) => (a === SINK_SCRIPT ? "build/bench/sink.js" : a.includes(" ") || a.includes("{") ? `'${a}'` : a)).join(" ")}`,
    memory: () => readServerMemory(pid),
    cpuSeconds: () => readServerCpuSeconds(pid),
    async finish() {
      child.send({ type: "stop" });
      const messages = await withTimeout(
        Promise.race([
          counted,
          exited(child).then(() =>
            Promise.reject(new Error(`${kind} died before it reported its count:\n${tail(logPath)}`)),
          ),
        ]),
        EXIT_TIMEOUT_MS,
        `${kind}'s count`,
      );
      await stopChild(child, null);
      return messages;
    },
    kill: () => child.kill("SIGKILL"),
  };
}

/**
 * `mailgate serve`, the real CLI: into a fresh fsynced Maildir (mailgate-serve, and with 2 workers
 * mailgate-serve-workers2) or into the run's sink (mailgate-serve-amqp, -http: options.sink).
 */
async function startServe(id: MaildirServerId | SinkServerId, options: StartOptions): Promise<RunningServer> {
  const logPath = join(logDirectory(), `${options.tag}.log`);
  const sink = options.sink;
  const intoMaildir = id === "mailgate-serve" || id === "mailgate-serve-workers2";
  if (!intoMaildir && !sink) throw new Error(`${id} needs the run's sink (options.sink)`);
  const maildir = maildirFor(options.tag);
  if (!sink) rmSync(maildir, { recursive: true, force: true });
  const log = openSync(logPath, "w");
  const limit = String(options.maxConnections);
  const serveFlags = (store: string[]) => [
    "serve",
    "--hosts",
    HOST,
    "--ports",
    "0",
    ...store,
    "--max-processings",
    limit,
    "--max-connections",
    limit,
    "--max-message-size",
    "0",
    ...(id === "mailgate-serve-workers2" ? ["--workers", "2"] : []),
  ];
  const flags = serveFlags(sink ? sink.flags : ["--maildir", maildir]);
  const args = [...profileArgs(id, options), CLI_SCRIPT, ...flags];
  // stdout (one line per stored message) goes to a file: nothing in the benchmark has to read it live.
  const child = track(
    spawnWithFiles(process.execPath, args, filesFor(options), {
      stdio: ["ignore", log, log],
      env: { ...process.env, ...sink?.env },
    }),
  );
  closeSync(log);
  const ready = (async () => {
    for (;;) {
      const match = /serving SMTP on 127\.0\.0\.1:(\d+)/.exec(readFileSync(logPath, "utf8"));
      if (match) return Number(match[1]);
      await sleep(25);
    }
  })();
  let port: number;
  try {
    port = await withTimeout(
      Promise.race([ready, failOnExit(child, id, logPath)]),
      READY_TIMEOUT_MS,
      `starting ${id}`,
    );
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  const pid = child.pid as number;
  const shown = [
    ...profileArgs(id, options),
    "build/src/cli/main.js",
    ...serveFlags(sink ? sink.shownFlags : ["--maildir", ".bench-tmp/maildir/<run>"]),
  ];
  const environment = Object.keys(sink?.env ?? {}).map((name) => `${name}=... `);
  // A NATS sink URL's query and template need quotes in a shell.
  const quoted = shown.map((arg) => (/[&?{}]/.test(arg) ? `'${arg}'` : arg));
  return {
    id,
    pid,
    port,
    command: `${environment.join("")}node ${quoted.join(" ")}`,
    memory: () => readServerMemory(pid),
    cpuSeconds: () => readServerCpuSeconds(pid),
    async finish() {
      // Every 250 the client saw was sent after the rename into new/ and its directory fsync, or after
      // the sink's confirm (RabbitMQ) or 2xx (HTTP).
      const stored = sink ? await sink.count() : readdirSync(join(maildir, "new")).length;
      await stopChild(child, "SIGTERM");
      // The Maildir stays until removeMaildirs(): see there. The caller disposes of the sink.
      return stored;
    },
    kill: () => child.kill("SIGKILL"),
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function startSmtpSink(options: StartOptions): Promise<RunningServer> {
  const logPath = join(logDirectory(), `${options.tag}.log`);
  const countPath = join(logDirectory(), `${options.tag}.count`);
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const args = [
      ...(process.getuid?.() === 0 ? ["-u", "nobody"] : []), // it refuses to run as root without -u
      "-c", // running counters on stdout: how the benchmark knows what it accepted
      "-m",
      String(options.maxConnections),
      "-t",
      String(SESSION_TIMEOUT_SECONDS),
      `${HOST}:${port}`,
      "4096",
    ];
    const out = openSync(countPath, "w");
    const log = openSync(logPath, "w");
    const child = track(
      spawnWithFiles(SMTP_SINK_PATH, args, filesFor(options), { stdio: ["ignore", out, log] }),
    );
    closeSync(out);
    closeSync(log);
    const ready = (async () => {
      while (!(await canConnect(port))) await sleep(20);
      return port;
    })();
    try {
      await withTimeout(
        Promise.race([ready, failOnExit(child, "smtp-sink", logPath)]),
        READY_TIMEOUT_MS,
        "starting smtp-sink",
      );
    } catch (error) {
      child.kill("SIGKILL");
      // Another process may have taken the port between freePort() and the bind: try another.
      if (attempt < 3 && /in use/i.test(tail(logPath))) continue;
      throw error;
    }
    const pid = child.pid as number;
    return {
      id: "smtp-sink",
      pid,
      port,
      command: `${SMTP_SINK_PATH} ${args.join(" ")}`,
      memory: () => readServerMemory(pid),
      cpuSeconds: () => readServerCpuSeconds(pid),
      async finish() {
        // -c rewrites "sess=N quit=N mesg=N\r" at every change; the last one counts.
        const counters = readFileSync(countPath, "latin1");
        const all = [...counters.matchAll(/mesg=(\d+)/g)];
        await stopChild(child, "SIGTERM");
        return all.length === 0 ? 0 : Number(all[all.length - 1]?.[1]);
      },
      kill: () => child.kill("SIGKILL"),
    };
  }
}
