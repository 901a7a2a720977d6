/**
 * What the primary of runWorkers and its workers tell each other over the IPC channel of
 * child_process.fork (JSON messages; an accepted socket travels as the handle of a "connection").
 */
import type { ListenerRole } from "../server/listeners.js";

/** The environment variable that makes a process started by the primary a worker: its worker number. */
export const WORKER_ENV = "MAILGATE_WORKER";

/**
 * The environment variable that tells a worker how often (milliseconds) to send "alive" once it is ready,
 * for the primary's watch for a blocked event loop; absent: no heartbeat (the watch is off).
 */
export const HEARTBEAT_ENV = "MAILGATE_WORKER_HEARTBEAT";

/** A question a worker asks the primary, answered by an "answer" with the same `request` number. */
export type Question =
  /** Count a connection for the client a PROXY header named (maxConnectionsPerIp); answer: allowed. */
  | { ask: "count-client"; connection: number; key: string }
  /** Is the client key held back for AUTH failures (maxAuthFailuresPerIp)? answer: blocked. */
  | { ask: "auth-blocked"; key: string }
  /** Count an AUTH failure for the client key; answer: it has now reached the limit. */
  | { ask: "auth-failed"; key: string }
  /** Wait for the client key's turn to check a password (one at a time across workers); answer: granted. */
  | { ask: "auth-turn"; key: string; turn: number }
  /**
   * Count an event for the client key in the primary's limiter `limiter` (one per name, limit and window:
   * a rate limit of the workers' own); answer: the key has now reached the limit.
   */
  | { ask: "limit-record"; limiter: string; limit: number; windowMs: number; key: string }
  /** Is the client key held back by that limiter? answer: blocked. */
  | { ask: "limit-blocked"; limiter: string; limit: number; windowMs: number; key: string };

/** What the primary asks each worker for its operations endpoint: its metrics, or its readiness. */
export type ReportKind = "metrics" | "readiness";

/** A worker's answer to a "report" request: its value, or why it has none. */
export type ReportContent =
  /** prom-client's getMetricsAsJSON() of the worker's registry. */
  | { kind: "metrics"; metrics: unknown[] }
  /** Null when the worker is ready, else why not. */
  | { kind: "readiness"; reason: string | null }
  /** The worker has nothing to report (it was started without operations). */
  | { kind: "none" };

export type ToPrimary =
  /** The worker's server is started: it may get connections. */
  | { type: "ready" }
  /** The worker could not start its server; it exits. */
  | { type: "failed"; message: string }
  /** A connection no longer counts against the limits (its session is over, or its socket closed). */
  | { type: "released"; connection: number }
  | ({ type: "question"; request: number } & Question)
  /** The client key's AUTH check is done: the next one may run. */
  | { type: "auth-turn-done"; key: string; turn: number }
  /** The answer to the primary's "report" request of the same number. */
  | { type: "report"; request: number; report: ReportContent }
  /** The worker's server has stopped; the process is about to exit. */
  | { type: "stopped" }
  /**
   * Sent on the worker's own timer (HEARTBEAT_ENV): its event loop runs. Not an answer to anything the
   * primary sends: a message to the worker may wait in the channel behind sockets it has yet to take.
   */
  | { type: "alive" };

export type ToWorker =
  /** An accepted socket (the message's handle), admitted by the primary, from a listener of `role`. */
  | { type: "connection"; connection: number; role: ListenerRole }
  | { type: "answer"; request: number; value: boolean }
  /** Report your metrics or readiness (for the primary's operations endpoint): answer with a "report". */
  | { type: "report"; request: number; kind: ReportKind }
  /** The session-ticket key in force from now on (base64 of 48 bytes). */
  | { type: "ticket-key"; key: string }
  /** Re-read the TLS certificate files (SIGHUP). */
  | { type: "reload-tls" }
  /**
   * No more connections will come: let the sessions end by themselves for `drainTimeout` ms, then stop
   * (rolling restart).
   */
  | { type: "retire"; drainTimeout: number }
  /** Stop now, gracefully (SIGTERM, SIGINT). */
  | { type: "stop" }
  /**
   * Answer "alive". The primary's watch listens for the worker's own heartbeat; it still asks, so that a
   * worker of the release before (which only answered) is not taken for hung across a rolling restart.
   */
  | { type: "ping" };
