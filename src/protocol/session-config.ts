/**
 * What a session is given: its settings (SessionConfig, compiled once per server) and the transport it
 * talks through (SessionTransport, the connection driver or a test).
 */
import type { SaslMechanismName } from "../sasl/mechanism.js";
import type { SessionContext } from "./context.js";
import type { CrlfMode } from "./data.js";
import type { Awaitable } from "./maybe-async.js";

/**
 * AUTH failures counted per client across sessions (the server keys them by client address: see
 * src/server/address-limiter.ts). Either method may answer with a promise (a shared store).
 */
export interface AuthFailureLimit {
  /** True while the session's client may not try AUTH: it reached the limit, its penalty is running. */
  isBlocked(ctx: SessionContext): Awaitable<boolean>;
  /** Counts a failure of the session's client; true when the client has now reached the limit. */
  record(ctx: SessionContext): Awaitable<boolean>;
  /** Runs `check` when no other check of the same client runs (in this process): one at a time. */
  exclusive<T>(ctx: SessionContext, check: () => Promise<T>): Promise<T>;
}

/** How the session reaches its peer; implemented by the server's connection driver and by tests. */
export interface SessionTransport {
  /**
   * Sends replies; false when the client is not reading them (its output is backed up): the session then
   * runs no further command until `outputDrained()` is called.
   */
  write(text: string): boolean;
  /** Ends the connection once written replies are flushed. */
  close(): void;
  /** receive() returned false: the session has consumed its input, and takes more again. */
  inputConsumed(): void;
  /** A command was answered: the per-command deadline starts again. */
  commandCompleted(): void;
  /** `bytes` of message data arrived: the DATA deadline grows by bytes / minimum data rate. */
  dataReceived(bytes: number): void;
  /**
   * STARTTLS: stop reading plaintext, perform the server side of the handshake, fill ctx.server.encrypted
   * and ctx.server.tls, and resume reading decrypted bytes. Rejects (and ends the connection) on failure.
   */
  startTls?(): Promise<void>;
  /**
   * The client talked before the greeting and is refused: the transport logs it, a line per flood rather
   * than per connection (the session says nothing in the log itself, so a flood cannot fill it).
   */
  refusedEarlyTalker?(): void;
  /** The peer may use XCLIENT and XFORWARD (it is on the server's xclientTrusted list). */
  readonly xclientTrusted?: boolean;
}

export interface SessionConfig {
  /** Our host name, used in the greeting, EHLO answer and 221/421 replies. */
  hostname: string;
  /** Speak LMTP (RFC 2033): LHLO instead of HELO/EHLO, one reply per recipient after the data. */
  lmtp: boolean;
  crlfMode: CrlfMode;
  pipelining: boolean;
  /** 8BITMIME and SMTPUTF8 (the seed's internationalization_extensions). */
  internationalization: boolean;
  /** CHUNKING (BDAT) and BINARYMIME, RFC 3030. */
  chunking: boolean;
  /** DSN parameters on MAIL and RCPT, RFC 3461 (recorded for the hooks; mailgate sends no DSN itself). */
  dsn: boolean;
  /** REQUIRETLS (RFC 8689) offered inside TLS. */
  requireTls: boolean;
  /** STARTTLS offered (the transport must implement startTls). */
  tls: boolean;
  /** tlsMode required: mail commands before TLS get 530. */
  tlsRequired: boolean;
  auth: {
    mode: "forbidden" | "optional" | "required";
    mechanisms: readonly SaslMechanismName[];
    /** Offer and accept AUTH without TLS. */
    overPlaintext: boolean;
    /** Failed attempts before 421 and close. */
    maxFailures: number;
    /** Failures counted per client across sessions; reaching the limit also ends in 421. */
    addressLimit?: AuthFailureLimit;
  };
  /** Largest message in bytes (0 = unlimited); advertised as SIZE and enforced. */
  maxMessageSize: number;
  maxRecipients: number;
  /** Unknown, malformed or out-of-sequence commands allowed before 421 and close. */
  maxBadCommands: number;
  /** RCPT commands refused with a 5xx since the last message delivered, allowed before 421 and close. */
  maxRecipientRefusals: number;
  /** HELO/EHLO/LHLO must name a domain or an address literal (RFC 5321 4.1.1.1); see helo.ts. */
  heloStrict: boolean;
  /** Longest command line in octets including CRLF (RFC 5321 4.5.3.1.4: 512). */
  maxCommandLineLength: number;
  /** Bytes of one unterminated line after which the connection is dropped. */
  ioBufferMaxSize: number;
  /** highWaterMark of the stream given to onMessageStream. */
  messageChunkSize: number;
  /**
   * A message that ends within this many bytes is not streamed: onMessageStream is not called for it and
   * onMessageData gets it whole. 0 (the default): every message is streamed when onMessageStream is set.
   */
  bufferMessagesUpTo?: number;
  /** Log every command and reply at debug severity. */
  logDialog: boolean;
}
