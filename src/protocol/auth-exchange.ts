/**
 * The AUTH command and the SASL exchange after it (RFC 4954): the mechanism's challenges and the client's
 * response lines, the onAuth hook's verdict, and the count of failures that ends a session, and the
 * client's failures across sessions (config.auth.addressLimit). The session decides when AUTH may be given
 * at all (after EHLO, outside a transaction, once); this owns what follows.
 */
import {
  createExchange,
  isSaslMechanismName,
  MAX_SASL_LINE_OCTETS,
  parseAuthCommand,
  type SaslCredentials,
  type SaslExchange,
  type SaslStep,
  unrecognizedMechanismError,
} from "../sasl/mechanism.js";
import type { SessionContext } from "./context.js";
import { SmtpError } from "./errors.js";
import type { Awaitable } from "./maybe-async.js";
import { formatReply } from "./replies.js";
import type { SessionView } from "./session.js";

const LF = 10;

/** What the AUTH exchange uses of its session. */
export type AuthSession = Pick<
  SessionView,
  | "config"
  | "ctx"
  | "hooks"
  | "transport"
  | "input"
  | "inputPos"
  | "dropInput"
  | "isClosed"
  | "reply"
  | "answerError"
  | "close"
  | "expectCommands"
  | "expectSaslResponses"
>;

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

export class AuthExchange {
  /** The mechanism's side of the exchange under way; null between AUTH commands. */
  private sasl: SaslExchange | null = null;
  /** Failed attempts in this session (RFC 4954 4: a server may limit them). */
  private failures = 0;
  /** The response line being read outgrew the limit; its bytes are being dropped until its end. */
  private lineTooLong = false;

  constructor(private readonly session: AuthSession) {}

  /** AUTH mechanism [initial-response] (RFC 4954 4), once the session has allowed AUTH here. */
  async start(args: string, moreInput: boolean): Promise<void> {
    const { session } = this;
    const { auth, hostname } = session.config;
    if (auth.addressLimit && (await this.clientBlocked(auth.addressLimit))) {
      return this.refuseAddress();
    }
    if (!session.ctx.server.encrypted && !auth.overPlaintext) {
      throw new SmtpError(538, "Error: authentication needs an encrypted connection (STARTTLS)", "5.7.11");
    }
    const { mechanism, initialResponse } = parseAuthCommand(args);
    if (!isSaslMechanismName(mechanism) || !auth.mechanisms.includes(mechanism)) {
      throw unrecognizedMechanismError();
    }
    this.sasl = createExchange(mechanism, { hostname });
    const step = this.sasl.start(initialResponse);
    if (step.kind === "challenge" && moreInput) {
      // RFC 4954 4: a pipelined AUTH must end its group, unless its initial response completes the
      // exchange; one that gets a challenge cannot have been followed by more input.
      session.reply(formatReply(554, "5.5.0", "Error: SMTP protocol synchronization"));
      session.close();
      return;
    }
    await this.advance(step);
  }

  /** One SASL response line: never decoded as a command, never logged (it carries secrets). */
  async pumpResponse(): Promise<boolean> {
    const { session } = this;
    const { input } = session;
    const start = session.inputPos;
    const lf = input.indexOf(LF, start);
    const limit = MAX_SASL_LINE_OCTETS + 2;
    if (lf === -1) {
      if (input.length - start > limit) {
        this.lineTooLong = true;
        session.dropInput();
      }
      return false;
    }
    session.inputPos = lf + 1;
    session.transport.commandCompleted();
    const tooLong = this.lineTooLong || lf + 1 - start > limit;
    this.lineTooLong = false;
    const end = lf > start && input[lf - 1] === 13 ? lf - 1 : lf;
    const sasl = this.sasl as SaslExchange;
    await this.advance(
      tooLong
        ? { kind: "error", error: new SmtpError(500, "Authentication exchange line is too long", "5.5.6") }
        : sasl.next(input.toString("latin1", start, end)),
    );
    return !session.isClosed;
  }

  /** Acts on the mechanism's step: a 334 challenge, a failure, or credentials for the onAuth hook. */
  private async advance(step: SaslStep): Promise<void> {
    const { session } = this;
    if (step.kind === "challenge") {
      session.expectSaslResponses();
      session.reply(formatReply(334, undefined, step.text));
      return;
    }
    session.expectCommands();
    this.sasl = null;
    if (step.kind === "error") return this.failed(step.error, "");
    const { credentials } = step;
    const limit = session.config.auth.addressLimit;
    // One check at a time per client address, each counted before the next starts: connections racing
    // each other would otherwise all pass the limit's check before any failure is counted.
    if (!limit) return this.check(credentials, undefined);
    try {
      await limit.exclusive(session.ctx, () => this.check(credentials, limit));
    } catch (error) {
      // Refused a turn (too many of this client's checks queued): temporary, not counted.
      const refusal = error instanceof SmtpError ? error : new SmtpError(454, undefined, "4.7.0");
      return this.failed(refusal, credentials.authenticationId);
    }
  }

  /** The onAuth hook's verdict on the credentials, and its reply. */
  private async check(credentials: SaslCredentials, limit: AuthFailureLimit | undefined): Promise<void> {
    const { session } = this;
    // The client may have gone, or reached the limit, while this attempt waited for its turn.
    if (session.isClosed) return;
    if (limit && (await this.clientBlocked(limit))) return this.refuseAddress();
    let value: unknown;
    try {
      value = await session.hooks.onAuth(
        session.ctx,
        credentials.authorizationId,
        credentials.authenticationId,
        credentials.secret,
        credentials.mechanism,
        credentials,
      );
    } catch (error) {
      return this.failed(
        error instanceof SmtpError ? error : new SmtpError(454, "Temporary authentication failure", "4.7.0"),
        credentials.authenticationId,
        error instanceof SmtpError ? undefined : error,
      );
    }
    const { server } = session.ctx;
    // The seed's rule: the hook's value, else the requested authorization id, else the user itself.
    server.authorizationId =
      typeof value === "string" && value !== ""
        ? value
        : credentials.authorizationId || credentials.authenticationId;
    server.authenticationId = credentials.authenticationId;
    server.authenticated = new Date();
    server.authMechanism = credentials.mechanism;
    session.hooks.log(
      session.ctx,
      "info",
      `Authenticated ${credentials.authenticationId} with ${credentials.mechanism}`,
    );
    session.reply(formatReply(235, "2.7.0", "Authentication successful"));
  }

  /**
   * A failed AUTH: logged without the secret, counted in this session and, when it is the client's fault
   * (a 5xx: wrong credentials, a malformed or cancelled exchange), for its address; too many of either
   * end the connection. A 4xx (454: the hook failed, the password checks are busy) is ours, not counted
   * against the address.
   */
  private async failed(error: SmtpError, user: string, cause?: unknown): Promise<void> {
    const { session } = this;
    const { auth, hostname } = session.config;
    this.failures++;
    session.hooks.observer?.authFailed(session.ctx);
    const who = user === "" ? "" : ` for ${JSON.stringify(user)}`;
    session.hooks.log(
      session.ctx,
      "warn",
      `Authentication failed${who}: ${error.code} ${error.enhancedCode}`,
      cause,
    );
    session.answerError(error);
    // Counted even when the client has gone: a reset right after the guess must not make it free.
    if (auth.addressLimit && error.code >= 500 && (await this.recordFailure(auth.addressLimit))) {
      if (session.isClosed) return;
      session.hooks.log(
        session.ctx,
        "warn",
        "Authentication refused from now on: too many failures from this address",
      );
      return this.refuseAddress();
    }
    if (!session.isClosed && this.failures >= auth.maxFailures) {
      session.reply(formatReply(421, "4.7.0", `${hostname} Error: too many authentication failures`));
      session.close();
    }
  }

  /** The client's address reached the limit: 421 and close (RFC 4954 4 lets a server limit failures). */
  private refuseAddress(): void {
    const { session } = this;
    session.hooks.observer?.connectionRefused("auth-failures-per-ip", session.ctx.server.remoteIp);
    session.reply(
      formatReply(
        421,
        "4.7.0",
        `${session.config.hostname} Error: too many authentication failures from your address, try again later`,
      ),
    );
    session.close();
  }

  /**
   * Whether the client is held back. A limit that cannot answer (its store unreachable) refuses AUTH for
   * now (454): failing open would lift the limit exactly when an attacker can make it fail.
   */
  private async clientBlocked(limit: AuthFailureLimit): Promise<boolean> {
    try {
      return await limit.isBlocked(this.session.ctx);
    } catch (error) {
      this.session.hooks.log(
        this.session.ctx,
        "error",
        `The AUTH failure limit cannot be checked: ${describe(error)}`,
        error,
      );
      throw new SmtpError(454, "Temporary authentication failure", "4.7.0");
    }
  }

  /** Counts a failure for the client; one that cannot be counted is logged, and the session goes on. */
  private async recordFailure(limit: AuthFailureLimit): Promise<boolean> {
    try {
      return await limit.record(this.session.ctx);
    } catch (error) {
      this.session.hooks.log(
        this.session.ctx,
        "error",
        `An AUTH failure cannot be counted: ${describe(error)}`,
        error,
      );
      return false;
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
