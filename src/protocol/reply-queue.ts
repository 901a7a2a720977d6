/**
 * A session's replies on their way out: collected while a pipelined batch runs and written in one piece,
 * with the transport's word on whether the client reads them (output backed up), and the errors answered
 * as replies: an SmtpError's own, a hook's failure as the default code without its text, each counted in
 * ctx.server and, for bad commands, against maxBadCommands.
 */
import type { SessionContext } from "./context.js";
import { adoptResponseCode, SmtpError } from "./errors.js";
import type { SessionHooks } from "./hooks.js";
import { type MessageResult, messageAnswers } from "./message-outcome.js";
import { formatReply, replyCode } from "./replies.js";
import type { SessionConfig, SessionTransport } from "./session-config.js";
import { BAD_COMMAND_CODES } from "./verbs.js";

const MAX_KEPT_ERRORS = 100;

export class ReplyQueue {
  private out = "";
  /** The session closed: nothing more is said. */
  private closed = false;
  private badCommands = 0;
  /** RCPT commands refused with a 5xx since the last message accepted (maxRecipientRefusals). */
  private refusedRecipients = 0;
  /** The transport's output is backed up: no command runs until it drains. */
  private blocked = false;
  /** Resolved when the output drains or the session ends (whenIdle waits on it). */
  private waiter: { promise: Promise<void>; resolve: () => void } | null = null;

  constructor(
    private readonly ctx: SessionContext,
    private readonly config: SessionConfig,
    private readonly hooks: SessionHooks,
    private readonly transport: Pick<SessionTransport, "write">,
  ) {}

  /** False once the session closed (or the client went). */
  get isOpen(): boolean {
    return !this.closed;
  }

  /** Replies not written yet, in characters. */
  get pending(): number {
    return this.out.length;
  }

  /** The client does not read its replies: no command may run until the output drains. */
  get backedUp(): boolean {
    return this.blocked;
  }

  /** Resolves when the output drains or the session ends; null while the output flows. */
  get drained(): Promise<void> | null {
    return this.waiter?.promise ?? null;
  }

  reply(text: string): void {
    if (this.closed) return;
    if (this.config.logDialog) this.logReply(text);
    this.hooks.observer?.reply(this.ctx, replyCode(text));
    this.out += text;
  }

  /** Writes the collected replies; notes when the transport says its output is backed up. */
  flush(): void {
    if (this.out === "") return;
    const text = this.out;
    this.out = "";
    if (!this.transport.write(text) && !this.blocked) {
      this.blocked = true;
      let resolve = () => {};
      const promise = new Promise<void>((settle) => {
        resolve = settle;
      });
      this.waiter = { promise, resolve };
    }
  }

  /** The output drained (or a new output replaced it, after STARTTLS): replies flow again. */
  unblock(): void {
    this.blocked = false;
    this.release();
  }

  /** The session ends: no more replies are queued, nobody waits for the output. */
  close(): void {
    this.closed = true;
    this.release();
  }

  /**
   * Answers an error as the failure of a `verb` command: its reply, counted as a bad command when it is
   * one, or as a refused recipient (a 5xx to RCPT). True when the session must close now: the error says
   * so (421, 521) or there were too many (a 421 is queued).
   */
  answerError(thrown: unknown, defaultCode = 500, verb = ""): boolean {
    const error = this.replyError(thrown, defaultCode);
    if (!(error instanceof SmtpError)) return false;
    if (error.closesConnection) return true;
    if (BAD_COMMAND_CODES.has(error.code)) {
      if (++this.badCommands <= this.config.maxBadCommands) return false;
    } else if (verb === "RCPT" && error.code >= 500) {
      if (++this.refusedRecipients <= this.config.maxRecipientRefusals) return false;
    } else {
      return false;
    }
    this.reply(
      formatReply(421, "4.7.0", `${this.config.hostname} Error: too many errors, closing connection`),
    );
    return true;
  }

  /**
   * Replies to an error: SmtpErrors carry their reply; anything else is a hook's failure, logged and
   * answered with the default (500, or 451 during DATA) without leaking its text. Returns the error as
   * answered (an smtp-server style error adopted as an SmtpError).
   */
  replyError(thrown: unknown, defaultCode: number): unknown {
    const error = adoptResponseCode(thrown);
    if (error !== thrown) this.hooks.log(this.ctx, "info", `hook failed: ${describe(thrown)}`);
    this.recordError(error);
    if (error instanceof SmtpError) {
      this.reply(error.render());
    } else {
      this.hooks.log(this.ctx, "error", `hook failed: ${describe(error)}`, error);
      this.hooks.observer?.hookFailed(this.ctx, error);
      this.reply(SmtpError.code(defaultCode).render());
    }
    return error;
  }

  /** Counts an error in ctx.server (the last 100 are kept). */
  recordError(error: unknown): void {
    const { server } = this.ctx;
    server.exceptions++;
    server.errors.push(error instanceof Error ? error : new Error(String(error)));
    if (server.errors.length > MAX_KEPT_ERRORS) server.errors.shift();
    if (error instanceof SmtpError) this.hooks.log(this.ctx, "debug", error.message);
  }

  /**
   * The reply (or, in LMTP, the replies) to a complete message. True when the session must close (a
   * refusal that closes, too many errors).
   */
  answerMessage(result: MessageResult, recipients: readonly string[]): boolean {
    let closing = false;
    for (const answer of messageAnswers(result, recipients, this.config.lmtp)) {
      if (answer.refused) {
        closing = this.answerError(answer.error, 451) || closing;
        this.hooks.observer?.messageRefused(this.ctx);
      } else {
        this.reply(formatReply(250, "2.0.0", answer.text));
        this.hooks.observer?.messageAccepted(this.ctx);
        this.refusedRecipients = 0; // a client that delivers is not guessing addresses
      }
      if (closing) this.closed = true;
    }
    return closing;
  }

  /** One debug event per reply line: a multi-line reply (EHLO's) must not make unprefixed log lines. */
  private logReply(text: string): void {
    for (const line of text.trimEnd().split("\r\n")) this.hooks.log(this.ctx, "debug", `>>> ${line}`);
  }

  private release(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.resolve();
  }
}

export function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
