/**
 * `mailgate serve --workers N|auto`, --worker-drain-timeout and --worker-hang-timeout: how many processes
 * serve, how long a worker retired by a rolling restart lets its sessions end, and how long a worker may
 * go silent (no heartbeat) before it is killed. Parsing only; src/cli/serve-workers.ts runs them.
 */
import { DEFAULT_DRAIN_TIMEOUT, DEFAULT_HANG_TIMEOUT, MIN_HANG_TIMEOUT } from "../cluster/run-workers.js";
import { UsageError, wholeNumber } from "./flag-values.js";

export interface WorkerFlags {
  /** 1 (the default) is the single process of old: no primary, no workers. */
  workers: number | "auto";
  drainTimeout: number;
  hangTimeout: number;
}

export function workerParseArgsOptions(): Record<string, { type: "string" }> {
  return {
    workers: { type: "string" },
    "worker-drain-timeout": { type: "string" },
    "worker-hang-timeout": { type: "string" },
  };
}

export function parseWorkerFlags(values: Record<string, string | boolean | undefined>): WorkerFlags {
  const workers = values.workers;
  const drain = values["worker-drain-timeout"];
  const hang = values["worker-hang-timeout"];
  const parsed: WorkerFlags = {
    workers:
      typeof workers !== "string" ? 1 : workers === "auto" ? "auto" : wholeNumber("workers", workers, 1),
    drainTimeout:
      typeof drain === "string" ? wholeNumber("worker-drain-timeout", drain) : DEFAULT_DRAIN_TIMEOUT,
    hangTimeout: typeof hang === "string" ? wholeNumber("worker-hang-timeout", hang) : DEFAULT_HANG_TIMEOUT,
  };
  if (parsed.hangTimeout > 0 && parsed.hangTimeout < MIN_HANG_TIMEOUT) {
    throw new UsageError(
      `Invalid value for --worker-hang-timeout: "${hang}"; it accepts 0 (no watch) or a whole number of at least ${MIN_HANG_TIMEOUT}.`,
    );
  }
  for (const [flag, value] of [
    ["worker-drain-timeout", drain],
    ["worker-hang-timeout", hang],
  ] as const) {
    if (parsed.workers === 1 && typeof value === "string") {
      throw new UsageError(`--${flag} applies only with --workers above 1 or auto.`);
    }
  }
  return parsed;
}

export function workerHelpLines(): string[] {
  return [
    "  --workers N|auto",
    "      Processes that serve: a primary listens, keeps maxConnections, maxConnectionsPerIp and maxAuthFailuresPerIp over all of them, and passes each connection to a worker; auto is one per core. SIGUSR2 restarts the workers one by one from the code on disk, without refusing anyone; SIGHUP reloads TLS in every worker (default: 1, a single process).",
    "  --worker-drain-timeout MS",
    `      How long a worker retired by a rolling restart lets its sessions end by themselves before idle ones get 421 and transactions have 10 s to finish (default: ${DEFAULT_DRAIN_TIMEOUT}).`,
    "  --worker-hang-timeout MS",
    `      How long a worker may go without sending the primary its heartbeat (its event loop blocked, by a hook stuck in a loop say) before it is killed and a new one takes its place; at least ${MIN_HANG_TIMEOUT}, or 0 never (default: ${DEFAULT_HANG_TIMEOUT}).`,
  ];
}
