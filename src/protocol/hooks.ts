/**
 * The event hooks, declared once: SmtpServerHooks is what a user implements (every hook optional, as
 * documented in docs/hooks.md); SessionHooks is what the protocol engine calls, the same signatures with
 * the server's defaults filled in.
 */
import type { Readable } from "node:stream";
import type { SaslCredentials, SaslMechanismName } from "../sasl/mechanism.js";
import type { EsmtpParams } from "./commands.js";
import type { SessionContext } from "./context.js";
import type { Awaitable } from "./maybe-async.js";
import type { Observer } from "./observer.js";

export type Severity = "debug" | "info" | "warn" | "error" | "fatal";

/** One recipient's result in LMTP: nothing or a text is a 250 (with that text), an error its reply. */
export type RecipientOutcome = string | Error | undefined | null;

/**
 * What the message hooks return: nothing (250), a text for the 250, or, in LMTP, one outcome per
 * recipient in `ctx.envelope.to` order (RFC 2033 4.2). In SMTP such a list refuses the whole message
 * with its first error, since SMTP has a single reply.
 */
export type MessageOutcome = string | readonly RecipientOutcome[] | undefined | void;

/** The event hooks. Each may be async; throwing an SmtpError sends its reply (421 also closes). */
export interface SmtpServerHooks {
  /** A client connected: may change ctx.server.localResponse / heloResponse, or refuse it. */
  onConnect?(ctx: SessionContext): Awaitable<void>;
  /** The connection is gone (always called, after onConnect). */
  onDisconnect?(ctx: SessionContext): Awaitable<void>;
  /** HELO/EHLO: may change ctx.server.heloResponse or refuse. */
  onHelo?(ctx: SessionContext, heloData: string): Awaitable<void>;
  /** MAIL FROM: returning a string replaces the address (without brackets; "" is the null sender). */
  onMailFrom?(
    ctx: SessionContext,
    address: string,
    params: EsmtpParams,
  ): Awaitable<string | undefined | void>;
  /** RCPT TO: returning a string replaces the address. */
  onRcptTo?(ctx: SessionContext, address: string, params: EsmtpParams): Awaitable<string | undefined | void>;
  /** VRFY: return the verified mailbox (250); without this hook VRFY answers 252. */
  onVrfy?(ctx: SessionContext, argument: string): Awaitable<string>;
  /** EXPN: return the list members (250); without this hook EXPN answers 502. */
  onExpn?(ctx: SessionContext, argument: string): Awaitable<readonly string[]>;
  /** DATA accepted, before the 354: may ctx.message.write() a Received header, or refuse. */
  onMessageDataStart?(ctx: SessionContext): Awaitable<void>;
  /** After each chunk of message data (not each line): may check ctx.message.bytesize, delay, refuse. */
  onMessageDataReceiving?(ctx: SessionContext): Awaitable<void>;
  /** The header block ended: ctx.message.write() inserts before the empty line. */
  onMessageDataHeaders?(ctx: SessionContext): Awaitable<void>;
  /**
   * Receives the message as a stream with backpressure (constant memory for any size); when present,
   * ctx.message.data stays empty. The 250 waits for the returned promise; a string result becomes the
   * 250's text. A rejection refuses the message (SmtpError reply, else 451).
   */
  onMessageStream?(ctx: SessionContext, stream: Readable): Awaitable<MessageOutcome>;
  /** The complete message in ctx.message.data. A string result becomes the 250's text. */
  onMessageData?(ctx: SessionContext): Awaitable<MessageOutcome>;
  /**
   * AUTH credentials: resolve to accept (a string result becomes the authorization id), throw to refuse
   * (SmtpError.code(535) for bad credentials). For CRAM-MD5 `secret` is the client's digest: check it with
   * credentials.verifyPassword(password). The default denies everyone.
   */
  onAuth?(
    ctx: SessionContext,
    authorizationId: string,
    authenticationId: string,
    secret: string,
    mechanism: SaslMechanismName,
    credentials: SaslCredentials,
  ): Awaitable<string | undefined | void>;
  /** A command we do not know; throw to choose the reply (the default is 500), e.g. 421 to drop. */
  onProcessLineUnknown?(ctx: SessionContext, line: string): Awaitable<void>;
  /** Every log event; the default writes to the logger when severity reaches loggerSeverity. */
  onLogging?(ctx: SessionContext | null, severity: Severity, message: string, error?: unknown): void;
}

/** The hooks that are always there for the session (the server supplies a default for each). */
export type AlwaysPresent =
  | "onConnect"
  | "onHelo"
  | "onMailFrom"
  | "onRcptTo"
  | "onMessageDataStart"
  | "onMessageDataReceiving"
  | "onMessageDataHeaders"
  | "onMessageData"
  | "onAuth"
  | "onProcessLineUnknown";

/** The hooks the session calls; the server binds them to the user's implementation. */
export type SessionHooks = Required<Pick<SmtpServerHooks, AlwaysPresent>> &
  Pick<SmtpServerHooks, "onVrfy" | "onExpn" | "onMessageStream"> & {
    /** Every log event, through the server's guard (a failing logger never breaks a session). */
    log(ctx: SessionContext | null, severity: Severity, message: string, error?: unknown): void;
    /** Told of every event when the server has an observer (see observer.ts); absent otherwise. */
    observer?: Observer;
  };

/** The hooks a message uses. */
export type MessageHooks = Pick<
  SessionHooks,
  | "onMessageDataStart"
  | "onMessageDataReceiving"
  | "onMessageDataHeaders"
  | "onMessageStream"
  | "onMessageData"
>;
