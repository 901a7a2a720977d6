/**
 * The AUTH command and the SASL exchange after it (RFC 4954): the mechanism's challenges and the client's
 * response lines, the onAuth hook's verdict, and the count of failures that ends a session, and the
 * client's failures across sessions (config.auth.addressLimit). The session decides when AUTH may be given
 * at all (after EHLO, outside a transaction, once) and reads the response lines; this says what each one
 * leads to, as a step the session carries out.
 */
import {
  createExchange,
  isSaslMechanismName,
  parseAuthCommand,
  type SaslCredentials,
  SaslError,
  type SaslExchange,
  type SaslFailure,
  type SaslFailureKind,
  type SaslStep,
  unrecognizedMechanism,
} from "../sasl/mechanism.js";
import type { SessionContext } from "./context.js";
import { SmtpError } from "./errors.js";
import type { SessionHooks } from "./hooks.js";
import { type Awaitable, thenCall } from "./maybe-async.js";
import { formatReply } from "./replies.js";
import type { AuthFailureLimit, SessionConfig } from "./session-config.js";

export type { AuthFailureLimit } from "./session-config.js";

/** What the session does after an AUTH command or response line. */
export type AuthStep =
  /** Send the 334 challenge; the next line is the client's response. */
  | { kind: "challenge"; reply: string }
  /** Authenticated: send the 235; commands follow. */
  | { kind: "authenticated"; reply: string }
  /**
   * The attempt failed: answer the error as a command's failure, then, if the session is still open, ask
   * afterFailure() what follows. `limitReached`: counting it made the client's address reach its limit.
   */
  | { kind: "failed"; error: SmtpError; limitReached: boolean }
  /** Send this reply and close the connection. */
  | { kind: "refused"; reply: string }
  /** The session closed meanwhile: nothing more to say. */
  | { kind: "silent" };

/** The SMTP reply for each kind of SASL failure (the reason is the reply's text). */
const FAILURE_REPLIES: Readonly<Record<SaslFailureKind, readonly [code: number, enhanced: string]>> = {
  syntax: [501, "5.5.4"],
  "unknown-mechanism": [504, "5.5.4"],
  malformed: [501, "5.5.2"],
  cancelled: [501, "5.0.0"],
  "too-long": [500, "5.5.6"],
  "initial-response-not-allowed": [501, "5.7.0"],
};

/** The reply to a SASL failure, as an SmtpError. */
export function saslFailureError(failure: SaslFailure): SmtpError {
  const [code, enhanced] = FAILURE_REPLIES[failure.kind];
  return new SmtpError(code, failure.reason, enhanced);
}

const SILENT: AuthStep = { kind: "silent" };

/** What an AUTH exchange is given: the session's context and settings, its hooks, and whether it is open. */
export interface AuthInputs {
  ctx: SessionContext;
  config: SessionConfig;
  hooks: Pick<SessionHooks, "onAuth" | "log" | "observer">;
  /** False once the session closed (the client went, a timeout): no hook is started for it. */
  isOpen(): boolean;
}

export class AuthExchange {
  /** The mechanism's side of the exchange under way; null between AUTH commands. */
  private sasl: SaslExchange | null = null;
  /** Failed attempts in this session (RFC 4954 4: a server may limit them). */
  private failures = 0;

  constructor(private readonly inputs: AuthInputs) {}

  /** AUTH mechanism [initial-response] (RFC 4954 4), once the session has allowed AUTH here. */
  async start(args: string, moreInput: boolean): Promise<AuthStep> {
    const { ctx, config } = this.inputs;
    const { auth, hostname } = config;
    if (auth.addressLimit && (await this.clientBlocked(auth.addressLimit))) return this.refuseAddress();
    if (!ctx.server.encrypted && !auth.overPlaintext) {
      throw new SmtpError(538, "Error: authentication needs an encrypted connection (STARTTLS)", "5.7.11");
    }
    let command: ReturnType<typeof parseAuthCommand>;
    try {
      command = parseAuthCommand(args);
    } catch (error) {
      throw error instanceof SaslError ? saslFailureError(error.failure) : error;
    }
    const { mechanism, initialResponse } = command;
    if (!isSaslMechanismName(mechanism) || !auth.mechanisms.includes(mechanism)) {
      throw saslFailureError(unrecognizedMechanism());
    }
    this.sasl = createExchange(mechanism, { hostname });
    const step = this.sasl.start(initialResponse);
    if (step.kind === "challenge" && moreInput) {
      // RFC 4954 4: a pipelined AUTH must end its group, unless its initial response completes the
      // exchange; one that gets a challenge cannot have been followed by more input.
      return { kind: "refused", reply: formatReply(554, "5.5.0", "Error: SMTP protocol synchronization") };
    }
    return this.advance(step);
  }

  /**
   * One SASL response line, null when it was too long: never decoded as a command, never logged (it
   * carries secrets).
   */
  respond(line: string | null): Awaitable<AuthStep> {
    const sasl = this.sasl;
    if (line === null || !sasl) {
      return this.advance({
        kind: "failed",
        failure: { kind: "too-long", reason: "Authentication exchange line is too long" },
      });
    }
    return this.advance(sasl.next(line));
  }

  /** Acts on the mechanism's step: a 334 challenge, a failure, or credentials for the onAuth hook. */
  private advance(step: SaslStep): Awaitable<AuthStep> {
    if (step.kind === "challenge")
      return { kind: "challenge", reply: formatReply(334, undefined, step.text) };
    this.sasl = null;
    if (step.kind === "failed") return this.failed(saslFailureError(step.failure), "");
    const { credentials } = step;
    const { ctx, config } = this.inputs;
    const limit = config.auth.addressLimit;
    // One check at a time per client address, each counted before the next starts: connections racing
    // each other would otherwise all pass the limit's check before any failure is counted.
    if (!limit) return this.check(credentials, undefined);
    return limit
      .exclusive(ctx, () => this.check(credentials, limit))
      .catch((error: unknown) => {
        // Refused a turn (too many of this client's checks queued): temporary, not counted.
        const refusal = error instanceof SmtpError ? error : new SmtpError(454, undefined, "4.7.0");
        return this.failed(refusal, credentials.authenticationId);
      });
  }

  /** The onAuth hook's verdict on the credentials, and its reply. */
  private async check(credentials: SaslCredentials, limit: AuthFailureLimit | undefined): Promise<AuthStep> {
    const { ctx, hooks } = this.inputs;
    // The client may have gone, or reached the limit, while this attempt waited for its turn.
    if (!this.inputs.isOpen()) return SILENT;
    if (limit && (await this.clientBlocked(limit))) return this.refuseAddress();
    let value: unknown;
    try {
      value = await hooks.onAuth(
        ctx,
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
    const { server } = ctx;
    // The seed's rule: the hook's value, else the requested authorization id, else the user itself.
    server.authorizationId =
      typeof value === "string" && value !== ""
        ? value
        : credentials.authorizationId || credentials.authenticationId;
    server.authenticationId = credentials.authenticationId;
    server.authenticated = new Date();
    server.authMechanism = credentials.mechanism;
    hooks.log(ctx, "info", `Authenticated ${credentials.authenticationId} with ${credentials.mechanism}`);
    return { kind: "authenticated", reply: formatReply(235, "2.7.0", "Authentication successful") };
  }

  /**
   * A failed AUTH: logged without the secret, counted in this session and, when it is the client's fault
   * (a 5xx: wrong credentials, a malformed or cancelled exchange), for its address, before the next check
   * of the same client starts. A 4xx (454: the hook failed, the password checks are busy) is ours, not
   * counted against the address.
   */
  private failed(error: SmtpError, user: string, cause?: unknown): Awaitable<AuthStep> {
    const { ctx, config, hooks } = this.inputs;
    this.failures++;
    hooks.observer?.authFailed(ctx);
    const who = user === "" ? "" : ` for ${JSON.stringify(user)}`;
    hooks.log(ctx, "warn", `Authentication failed${who}: ${error.code} ${error.enhancedCode}`, cause);
    const limit = config.auth.addressLimit;
    // Counted even when the client has gone: a reset right after the guess must not make it free.
    if (!limit || error.code < 500) return { kind: "failed", error, limitReached: false };
    return thenCall(
      () => this.recordFailure(limit),
      (limitReached): AuthStep => ({ kind: "failed", error, limitReached }),
    );
  }

  /**
   * After a failure was answered, in a session still open: too many failures from the client's address,
   * or in this session, end the connection with the 421 returned here; null when the session goes on.
   */
  afterFailure(step: { limitReached: boolean }): string | null {
    const { ctx, config, hooks } = this.inputs;
    if (step.limitReached) {
      hooks.log(ctx, "warn", "Authentication refused from now on: too many failures from this address");
      return this.refuseAddress().reply;
    }
    if (this.failures >= config.auth.maxFailures) {
      return formatReply(421, "4.7.0", `${config.hostname} Error: too many authentication failures`);
    }
    return null;
  }

  /** The client's address reached the limit: 421 and close (RFC 4954 4 lets a server limit failures). */
  private refuseAddress(): { kind: "refused"; reply: string } {
    const { ctx, config, hooks } = this.inputs;
    hooks.observer?.connectionRefused("auth-failures-per-ip", ctx.server.remoteIp);
    return {
      kind: "refused",
      reply: formatReply(
        421,
        "4.7.0",
        `${config.hostname} Error: too many authentication failures from your address, try again later`,
      ),
    };
  }

  /**
   * Whether the client is held back. A limit that cannot answer (its store unreachable) refuses AUTH for
   * now (454): failing open would lift the limit exactly when an attacker can make it fail.
   */
  private async clientBlocked(limit: AuthFailureLimit): Promise<boolean> {
    const { ctx, hooks } = this.inputs;
    try {
      return await limit.isBlocked(ctx);
    } catch (error) {
      hooks.log(ctx, "error", `The AUTH failure limit cannot be checked: ${describe(error)}`, error);
      throw new SmtpError(454, "Temporary authentication failure", "4.7.0");
    }
  }

  /** Counts a failure for the client; one that cannot be counted is logged, and the session goes on. */
  private async recordFailure(limit: AuthFailureLimit): Promise<boolean> {
    const { ctx, hooks } = this.inputs;
    try {
      return await limit.record(ctx);
    } catch (error) {
      hooks.log(ctx, "error", `An AUTH failure cannot be counted: ${describe(error)}`, error);
      return false;
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
