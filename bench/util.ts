/**
 * Small helpers shared by the benchmark: paths, /proc readings (memory and CPU of a server process and
 * its children), the
 * open-files limit, medians, and spawning a child with a raised `ulimit -n`.
 */
import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The repository root (this file runs as build/bench/util.js). */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** Scratch space for Maildirs, logs, profiles and raw results; gitignored. */
export const BENCH_TMP = join(REPO_ROOT, ".bench-tmp");
/** The one address every server and client of the benchmark uses. */
export const HOST = "127.0.0.1";
/** Where `mailgate serve` keeps its Maildirs, one per run, and the disk-ceiling probe writes its files. */
export const MAILDIR_ROOT = join(BENCH_TMP, "maildir");
/**
 * Every server's session timeout (mailgate's ioCmdTimeout, smtp-server's socketTimeout, smtp-sink's -t),
 * raised from their defaults (30, 60 and 100 s) so that no idle connection is closed while the idle
 * scenario watches the servers' memory settle.
 */
export const SESSION_TIMEOUT_SECONDS = 300;

export const KiB = 1024;
export const MiB = 1024 * 1024;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export interface Memory {
  /** VmHWM: the peak resident set size since the process started, in bytes. */
  peak: number;
  /** VmRSS: the current resident set size, in bytes. */
  current: number;
}

/** Peak and current RSS of one process, from /proc/<pid>/status. */
function readMemory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status);
    if (!match) throw new Error(`/proc/${pid}/status has no ${name} line`);
    return Number(match[1]) * KiB;
  };
  return { peak: field("VmHWM"), current: field("VmRSS") };
}

/**
 * The process ids of `pid`'s children (/proc/<pid>/task/<tid>/children of each of its threads): a primary's
 * workers.
 */
export function childPids(pid: number): number[] {
  const pids: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      const list = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
      if (list !== "") pids.push(...list.split(" ").map(Number));
    } catch {
      // The thread ended while we read.
    }
  }
  return pids;
}

/** Sums `read` over `pid` and its children; a child that exits while it is read counts nothing. */
function overProcessAndChildren<T>(pid: number, read: (pid: number) => T, add: (a: T, b: T) => T): T {
  let total = read(pid);
  for (const child of childPids(pid)) {
    try {
      total = add(total, read(child));
    } catch {
      // Exited between the listing and the reading.
    }
  }
  return total;
}

/**
 * Peak and current RSS of a server: its process plus its children (a primary and its workers). The peak
 * is the sum of each process's own VmHWM, an upper bound of their peak together.
 */
export function readServerMemory(pid: number): Memory {
  return overProcessAndChildren(pid, readMemory, (a, b) => ({
    peak: a.peak + b.peak,
    current: a.current + b.current,
  }));
}

/** CPU seconds (user + system) of a server so far: its process plus its children that run now. */
export function readServerCpuSeconds(pid: number): number {
  return overProcessAndChildren(pid, readCpuSeconds, (a, b) => a + b);
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** Fields of /proc/<pid>/stat after the command name (which may contain spaces). */
function statFields(pid: number | "self"): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** CPU seconds (user + system) one process has used so far. */
function readCpuSeconds(pid: number): number {
  const fields = statFields(pid); // fields[0] is field 3 (state): utime is field 14, stime 15
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
}

/** CPU seconds used by this process's children that have exited and been reaped (cutime + cstime). */
export function readChildrenCpuSeconds(): number {
  const fields = statFields("self");
  return (Number(fields[13]) + Number(fields[14])) / ticksPerSecond();
}

/** The soft and hard limits on open files of this process (children inherit them). */
export function openFilesLimit(): { soft: number; hard: number } {
  const limits = readFileSync("/proc/self/limits", "utf8");
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  const parse = (value: string | undefined) =>
    value === "unlimited" ? Number.POSITIVE_INFINITY : Number(value);
  return { soft: parse(match?.[1]), hard: parse(match?.[2]) };
}

/**
 * Spawns `command args` with at least `files` open files allowed: directly when the inherited limit is
 * enough, else through `sh -c 'ulimit -n N && exec ...'` (the pid stays the same thanks to exec).
 * Throws one sentence when the hard limit is too low.
 */
export function spawnWithFiles(
  command: string,
  args: readonly string[],
  files: number,
  options: SpawnOptions,
): ChildProcess {
  const { soft, hard } = openFilesLimit();
  if (soft >= files) return spawn(command, args, options);
  if (hard < files) {
    throw new Error(
      `This needs ${files} open files but the hard limit (ulimit -Hn) is ${hard}; raise it or use fewer connections.`,
    );
  }
  return spawn("sh", ["-c", `ulimit -n ${files} && exec "$0" "$@"`, command, ...args], options);
}

/** A TCP port free on the loopback address right now (for programs that cannot bind port 0 and say so). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves with the exit code (or signal name) once `child` has exited. */
export function exited(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => {
    child.once("exit", (code, signal) => resolve(code ?? signal ?? -1));
    // A program that cannot be started (ENOENT...) emits "error" and never "exit".
    child.once("error", (error: NodeJS.ErrnoException) =>
      resolve(`not started: ${error.code ?? error.message}`),
    );
  });
}

/** Sends `message` to the parent over the IPC channel when there is one (fork), else as a JSON line on stdout. */
export function reportToParent(message: object): Promise<void> {
  return new Promise((resolve) => {
    if (process.send) process.send(message, undefined, {}, () => resolve());
    else process.stdout.write(`${JSON.stringify(message)}\n`, () => resolve());
  });
}

/**
 * Runs `main` when the module at `moduleUrl` (its import.meta.url) is the process's entry point, not an
 * import: exits 0 when it resolves, else reports { type: "error", message } to the parent and exits 1.
 */
export function runIfEntryPoint(moduleUrl: string, main: () => Promise<void>): void {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
  main().then(
    () => process.exit(0),
    async (error: unknown) => {
      await reportToParent({
        type: "error",
        message: error instanceof Error ? error.message : String(error),
      });
      process.exit(1);
    },
  );
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return "n/a";
  if (Math.abs(bytes) >= 10 * MiB) return `${(bytes / MiB).toFixed(0)} MB`;
  if (Math.abs(bytes) >= MiB) return `${(bytes / MiB).toFixed(1)} MB`;
  return `${(bytes / KiB).toFixed(1)} KB`;
}
