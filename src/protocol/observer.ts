/**
 * What a server tells an observer (metrics, tracing) as it works: connections, commands, replies,
 * messages, failures. The `observer` option takes one; without it nothing is reported and nothing is
 * paid beyond a null check per event. Every method is optional and is called synchronously on the hot
 * path, so it should do little (increment a number) and never throw: a throw is caught, reported once as
 * a process warning, and the event is lost.
 */
import type { SessionContext } from "./context.js";

/**
 * Why a connection was refused: maxConnections or maxConnectionsPerIp reached at accept (421, or a
 * close on an implicit TLS port), a client that talked before the greeting (554), or one whose address
 * reached maxAuthFailuresPerIp (421).
 */
export type RefusalReason =
  | "max-connections"
  | "max-connections-per-ip"
  | "early-talker"
  | "auth-failures-per-ip"
  | "connection-rate"
  | "message-rate";

export interface ServerObserver {
  /** A connection was admitted and has a session (after its PROXY header and implicit TLS handshake). */
  connectionOpened?(ctx: SessionContext): void;
  /** An admitted connection's socket closed. */
  connectionClosed?(ctx: SessionContext): void;
  /** A connection was refused; `clientAddress` is its client's IP address ("" for a UNIX socket peer). */
  connectionRefused?(reason: RefusalReason, clientAddress: string): void;
  /** A command line was read; `verb` is its first word upper-cased, as the client sent it (any word). */
  command?(ctx: SessionContext, verb: string): void;
  /** A reply was sent in a session (a multi-line reply once); refusals at accept are not replies here. */
  reply?(ctx: SessionContext, code: number): void;
  /** Bytes arrived from the client (commands and message data, after TLS decryption). */
  bytesReceived?(ctx: SessionContext, count: number): void;
  /** A complete message was accepted (250); in LMTP once per recipient whose reply is 250. */
  messageAccepted?(ctx: SessionContext): void;
  /** A complete message was refused (4xx or 5xx after its end); in LMTP once per refused recipient. */
  messageRefused?(ctx: SessionContext): void;
  /** A hook threw something other than an SmtpError (answered 451 or 500, and logged). */
  hookFailed?(ctx: SessionContext, error: unknown): void;
  /** An AUTH attempt failed (wrong credentials, a cancelled or malformed exchange, a 454). */
  authFailed?(ctx: SessionContext): void;
}

/** The observer as the server and its sessions call it: every method present. */
export type Observer = Required<ServerObserver>;
