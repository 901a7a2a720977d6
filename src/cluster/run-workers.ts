/**
 * runWorkers: the same SmtpServer on every core. The script that calls it runs as the primary (which
 * listens, keeps the limits and starts the workers) and again, in each worker process, where `create`
 * builds the server that serves the sockets the primary passes. See docs/workers.md.
 */
import { availableParallelism } from "node:os";
import type { Awaitable } from "../protocol/maybe-async.js";
import { listenPlan } from "../server/listeners.js";
import { defaultLogger, severityEnabled, writeLog } from "../server/logger.js";
import { completeObserver } from "../server/observer.js";
import { reloadTlsCertificates } from "../server/reload-tls.js";
import { SmtpServer, type SmtpServerOptions } from "../server/server.js";
import type { ReportKind } from "./messages.js";
import { WORKER_ENV } from "./messages.js";
import { Primary } from "./primary.js";
import { type PrimaryServices, serveFromPrimary, type WorkerHandle } from "./worker.js";
import type { WorkerReport } from "./worker-reports.js";

export type { ReportContent, ReportKind } from "./messages.js";
export type { PrimaryServices, WorkerHandle, WorkerReporter } from "./worker.js";
export type { WorkerReport } from "./worker-reports.js";

export interface RunWorkersOptions {
  /** Worker processes: a whole number from 1, or "auto" for one per core (os.availableParallelism()). */
  workers: number | "auto";
  /**
   * The options the servers are built from. The primary validates them, listens on their ports, hosts
   * and socketPath, keeps their maxConnections, maxConnectionsPerIp and maxAuthFailuresPerIp over all
   * workers, logs through their logger, and tells their observer (in the primary's process) of the
   * connections it refuses at accept (connectionRefused "max-connections" and "max-connections-per-ip").
   */
  options: SmtpServerOptions;
  /**
   * Builds a worker's server from the same options; called in each worker process, never in the primary.
   * `primary` offers address limiters counted in the primary and the reporting of the worker's metrics
   * and readiness to it.
   */
  create: (primary: PrimaryServices) => Awaitable<SmtpServer>;
  /**
   * Milliseconds a worker retired by a rolling restart lets its sessions end by themselves before it
   * stops (idle ones then get 421; transactions under way have 10 s more). Default 30000.
   */
  drainTimeout?: number;
  /**
   * Milliseconds a worker may go without sending the primary its heartbeat (its event loop blocked: a
   * hook stuck in a loop) before it is killed and replaced as a crashed one is; from 1000, or 0 to turn
   * the watch off. Default 30000. A worker is watched from the time it is ready.
   */
  hangTimeout?: number;
  /**
   * What SIGHUP (or handle.reloadTls()) does in each worker, with that worker's server; default: its TLS
   * certificate files read again.
   */
  reload?: (server: SmtpServer) => void;
  /**
   * The primary acts on signals (default true): SIGUSR2 rolling restart, SIGHUP TLS reload in every
   * worker, SIGINT or SIGTERM graceful stop (a second one kills the primary at once).
   */
  signals?: boolean;
}

export interface PrimaryHandle {
  role: "primary";
  /** "ip:port" of every listener, and "unix:path" for the socket. */
  addresses: string[];
  /** The process ids of the workers that get connections now. */
  readonly workerPids: number[];
  /** Rolling restart (as SIGUSR2): resolves when every old worker has exited. */
  restart(): Promise<void>;
  /** Every worker reads its TLS certificate files again (as SIGHUP). */
  reloadTls(): void;
  /**
   * Asks the workers what they report (PrimaryServices.report): their metrics (every running worker, a
   * retiring one included) or their readiness (the workers that get connections). A worker that does not
   * answer within timeoutMs is in the result with a null report.
   */
  workerReports(kind: ReportKind, timeoutMs: number): Promise<WorkerReport[]>;
  /** Graceful stop of every worker (as SIGTERM); resolves when all have exited. */
  stop(): Promise<void>;
  /** Resolves once stopped, whoever asked. */
  stopped: Promise<void>;
}

export const DEFAULT_DRAIN_TIMEOUT = 30_000;
/** hangTimeout's default: a worker silent this long (its event loop blocked) is killed and replaced. */
export const DEFAULT_HANG_TIMEOUT = 30_000;
/** The least hangTimeout (other than 0): below it, a busy machine's pauses would pass for hangs. */
export const MIN_HANG_TIMEOUT = 1000;

/** True in a process that runWorkers started as a worker. */
export function isWorkerProcess(): boolean {
  return process.env[WORKER_ENV] !== undefined && typeof process.send === "function";
}

/** "auto" or a count, checked; one sentence naming the option otherwise. */
export function workerCount(value: number | "auto"): number {
  if (value === "auto") return availableParallelism();
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`Invalid workers ${JSON.stringify(value)}: give a whole number from 1, or "auto".`);
  }
  return value;
}

/**
 * In the primary: validates the options, listens, starts the workers and resolves, once all are ready,
 * with the primary's handle. In a worker: builds and starts its server and resolves with the worker's
 * handle. Rejects (primary) when a listener cannot be bound or a worker cannot start its server.
 */
export async function runWorkers(run: RunWorkersOptions): Promise<PrimaryHandle | WorkerHandle> {
  if (isWorkerProcess()) return serveFromPrimary(run.create, run.reload ?? reloadTlsCertificates);
  const workers = workerCount(run.workers);
  const drainTimeout = run.drainTimeout ?? DEFAULT_DRAIN_TIMEOUT;
  const hangTimeout = run.hangTimeout ?? DEFAULT_HANG_TIMEOUT;
  for (const [name, value] of [
    ["drainTimeout", drainTimeout],
    ["hangTimeout", hangTimeout],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`Invalid ${name} ${value}: give the milliseconds, from 0.`);
    }
  }
  if (hangTimeout > 0 && hangTimeout < MIN_HANG_TIMEOUT) {
    throw new RangeError(
      `Invalid hangTimeout ${hangTimeout}: give at least ${MIN_HANG_TIMEOUT} ms, or 0 to turn the watch off.`,
    );
  }
  // Built only to validate the options as every worker will, and to read their settings.
  const { settings } = new SmtpServer(run.options);
  const given = run.options as Record<string, unknown>;
  const logger = run.options.logger ?? defaultLogger;
  const primary = new Primary({
    settings,
    plan: listenPlan(settings, given.ports !== undefined || given.hosts !== undefined),
    workers,
    drainTimeout,
    hangTimeout,
    log: (severity, message) => {
      if (severityEnabled(severity, settings.loggerSeverity)) writeLog(logger, null, severity, message);
    },
    refused: completeObserver(run.options.observer)?.connectionRefused,
  });
  await primary.start();
  let stopped = () => {};
  const allStopped = new Promise<void>((resolve) => {
    stopped = resolve;
  });
  const stop = () => primary.stop().then(stopped);
  const handle: PrimaryHandle = {
    role: "primary",
    addresses: primary.addresses,
    get workerPids() {
      return primary.workerPids;
    },
    restart: () => primary.restart(),
    reloadTls: () => primary.reloadTls(),
    workerReports: (kind, timeoutMs) => primary.workerReports(kind, timeoutMs),
    stop,
    stopped: allStopped,
  };
  if (run.signals ?? true) handleSignals(handle, (message) => writeLog(logger, null, "info", message));
  return handle;
}

function handleSignals(handle: PrimaryHandle, log: (message: string) => void): void {
  const restart = () => {
    log("SIGUSR2 received: rolling restart");
    void handle.restart();
  };
  const reload = () => {
    log("SIGHUP received: reloading the TLS certificates in every worker");
    handle.reloadTls();
  };
  // The first SIGINT or SIGTERM stops gracefully; then both get their default action again.
  const stop = (signal: NodeJS.Signals) => {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    log(`${signal} received: stopping gracefully`);
    void handle.stop();
  };
  process.on("SIGUSR2", restart);
  process.on("SIGHUP", reload);
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  void handle.stopped.then(() => {
    process.off("SIGUSR2", restart);
    process.off("SIGHUP", reload);
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  });
}
