/**
 * The state machine of one SMTP session (RFC 5321 4.1.4 and 4.3.2): bytes in, replies out, hooks called
 * in between. It never touches a socket, timer or file: a transport feeds it bytes and carries its
 * replies, so tests and fuzzers drive it the same way a TCP connection does.
 *
 * Replies to a pipelined batch (RFC 2920) are collected and written in one piece when the input runs
 * dry; the state machine itself is the seed's (`process_line` of MidiSmtpServer), tightened where the
 * RFCs or safety demand it. This file reads the input (command lines, SASL lines, message bodies by the
 * phase the session is in), runs the pump and answers for the session's life (greeting, timeouts,
 * shutdown, STARTTLS). What each command does is command-handlers.ts's; the transaction's state is
 * transaction.ts's; the body pump is message-intake.ts's; the replies and errors are reply-queue.ts's.
 */
import { MAX_SASL_LINE_OCTETS } from "../sasl/mechanism.js";
import type { AuthExchange } from "./auth-exchange.js";
import { CommandHandlers, type NextStep, requireNoArgs } from "./command-handlers.js";
import { type CommandLine, decodeCommandLine } from "./commands.js";
import type { SessionContext } from "./context.js";
import { SmtpError } from "./errors.js";
import type { SessionHooks } from "./hooks.js";
import { InputBuffer, TakenLine } from "./input-buffer.js";
import { type Awaitable, thenCall } from "./maybe-async.js";
import { BodyProgress, MessageIntake } from "./message-intake.js";
import { CLOSED, COMMAND, GREETING, type Phase, TLS } from "./phase.js";
import { formatReply } from "./replies.js";
import { describe, ReplyQueue } from "./reply-queue.js";
import type { SessionConfig, SessionTransport } from "./session-config.js";
import { MailTransaction, TxState } from "./transaction.js";
import { commandLineLimit, GROUP_ENDERS, KNOWN_VERBS, undecodableLineError } from "./verbs.js";

export type { AuthFailureLimit, SessionConfig, SessionTransport } from "./session-config.js";
export { KNOWN_VERBS } from "./verbs.js";

/**
 * Input held unconsumed (while a hook, a stream consumer or a backed-up output holds the session up)
 * before receive() says "no more".
 */
const INPUT_HIGH_WATER = 256 * 1024;
/**
 * Replies collected in one pass over pipelined input before they are written: the transport then says
 * whether the client reads them, and a client that does not gets no more of its commands run. Without
 * it, 256 KiB of 5-byte HELP commands would queue 5 MB of replies.
 */
const OUTPUT_BATCH = 16 * 1024;

export class SmtpSession {
  readonly ctx: SessionContext;
  private phase: Phase = GREETING;
  private readonly input = new InputBuffer();
  private readonly output: ReplyQueue;
  private readonly transaction: MailTransaction;
  private readonly commands: CommandHandlers;
  private readonly intake: MessageIntake;
  /** receive() returned false: the transport waits for inputConsumed(). */
  private inputWanted = false;
  private pumping = false;
  private running: Promise<void> | null = null;
  private closeRequested = false;

  constructor(
    private readonly config: SessionConfig,
    private readonly hooks: SessionHooks,
    private readonly transport: SessionTransport,
    ctx: SessionContext,
  ) {
    this.ctx = ctx;
    this.output = new ReplyQueue(ctx, config, hooks, transport);
    this.transaction = new MailTransaction(ctx, config, hooks);
    this.commands = new CommandHandlers(ctx, config, hooks, transport, this.output, this.transaction);
    this.intake = new MessageIntake(ctx, config, transport, this.input, this.output, this.transaction);
  }

  get isClosed(): boolean {
    return this.phase === CLOSED;
  }

  /**
   * Bytes received and not handled yet. Once the session is idle they are at most one unfinished command
   * or SASL line: longer lines are dropped as they come (the fuzzers check this bound).
   */
  get bufferedInputBytes(): number {
    return this.input.buffered;
  }

  /** True while a mail transaction or message is under way (graceful shutdown waits for these). */
  get inTransaction(): boolean {
    const { kind } = this.phase;
    return this.transaction.underWay || kind === "body" || kind === "skip-chunk";
  }

  /** Runs the connect hook and sends the greeting (or the hook's refusal). */
  start(): Awaitable<void> {
    if (this.phase !== GREETING) return;
    return thenCall(
      () => this.hooks.onConnect(this.ctx),
      () => this.greet(),
      (thrown) => {
        this.output.replyError(thrown, 421);
        this.close();
      },
    );
  }

  /** The connect hook let the client in: the greeting. */
  private greet(): void {
    if (this.phase !== GREETING) return;
    this.phase = COMMAND;
    this.output.reply(formatReply(220, undefined, this.ctx.server.localResponse));
    this.output.flush();
    this.transport.commandCompleted();
  }

  /**
   * Feeds bytes from the client, in the manner of a Writable's write(): true when the session can take
   * more now; false when its output is backed up (the client does not read its replies) or the bytes it
   * holds unconsumed passed the high-water mark (a hook or a slow stream consumer holds it up): the
   * transport then sends no more until the session calls its inputConsumed().
   */
  receive(chunk: Buffer): boolean {
    const { phase } = this;
    if (phase === CLOSED) return true;
    this.hooks.observer?.bytesReceived(this.ctx, chunk.length);
    if (phase === GREETING) {
      // RFC 5321 3.1: the client must wait for the greeting; talking first is a spambot's habit. It is
      // dropped at once, so that it holds nothing while it waits for a slot or the greeting pause.
      this.transport.refusedEarlyTalker?.();
      this.hooks.observer?.connectionRefused("early-talker", this.ctx.server.remoteIp);
      this.output.reply(formatReply(554, "5.5.0", "Protocol error: data received before the greeting"));
      this.close();
      return true;
    }
    if (phase === TLS) return true; // plaintext after STARTTLS is never executed
    this.input.append(chunk);
    void this.pump();
    // Not consumed while the client does not read its replies, nor beyond the high-water mark.
    if (this.phase === CLOSED || (!this.output.backedUp && this.input.buffered <= INPUT_HIGH_WATER)) {
      return true;
    }
    this.inputWanted = true;
    return false;
  }

  /** The client closed its side: abandon the session (a half-received message is discarded). */
  end(): void {
    if (this.phase === CLOSED) return;
    this.transaction.abandon(new Error("client disconnected"));
    this.phase = CLOSED;
    this.output.close();
  }

  /**
   * The client closed its sending side: what it sent is still handled and answered, then the
   * connection ends; a message whose end never came is discarded.
   */
  inputEnded(): void {
    if (this.phase === CLOSED) return;
    void this.whenIdle().then(() => {
      if (this.phase === CLOSED) return;
      this.transaction.abandon(new Error("client closed its side before the end of the message"));
      this.close();
    });
  }

  /** The per-command or data deadline passed. */
  timeout(): void {
    if (this.phase === CLOSED) return;
    // Also while committing: a hook that never settles must not hold the connection forever.
    this.transaction.abandon(new SmtpError(421, "Timeout", "4.4.2"));
    this.output.reply(formatReply(421, "4.4.2", `${this.config.hostname} Error: timeout exceeded`));
    this.close();
  }

  /**
   * Graceful close for server shutdown: an idle session gets 421 now; one inside a transaction after
   * the transaction ends.
   */
  requestClose(): void {
    this.closeRequested = true;
    // Neither an AUTH exchange, a TLS handshake nor a greeting still to come is a transaction to finish.
    if (this.phase === TLS) this.close();
    else if (!this.pumping && !this.inTransaction) this.closeForShutdown();
  }

  /** Immediate close with 421 (forced shutdown, internal failure). */
  shutdownNow(reply = this.shutdownReply()): void {
    if (this.phase === CLOSED) return;
    if (this.phase === TLS) {
      // In the middle of the TLS handshake a plaintext reply would only corrupt it.
      this.close();
      return;
    }
    if (this.transaction.committing) {
      // The message is complete and being handed over: its 250 (or refusal) goes out first, then 421.
      this.closeRequested = true;
      return;
    }
    this.transaction.abandon(new SmtpError(421, "Connection closed"));
    this.output.reply(reply);
    this.close();
  }

  private shutdownReply(): string {
    return formatReply(
      421,
      "4.3.2",
      `${this.config.hostname} Service shutting down, closing transmission channel`,
    );
  }

  private closeForShutdown(): void {
    if (this.phase === CLOSED) return;
    this.output.reply(this.shutdownReply());
    this.close();
  }

  /**
   * Resolves once everything received so far has been handled (hooks, a slow stream consumer and a
   * backed-up output waited for) and the session waits for more input.
   */
  async whenIdle(): Promise<void> {
    for (;;) {
      if (this.running) await this.running;
      else if (this.output.drained && !this.isClosed) await this.output.drained;
      else return;
    }
  }

  /**
   * Handles buffered input as far as it goes. Steps whose hooks answer at once run synchronously (a
   * pipelined batch is answered before this returns); the first step that waits for a promise hands the
   * rest of the work to an async loop, whose promise is kept in `running`.
   */
  private pump(): Promise<void> | undefined {
    if (this.pumping) return this.running ?? undefined;
    if (this.output.backedUp) return undefined; // outputDrained() pumps again
    this.pumping = true;
    try {
      for (;;) {
        const progressed = this.step();
        if (typeof progressed !== "boolean") {
          const run = this.pumpAsync(progressed);
          this.running = run;
          return run;
        }
        if (!progressed || this.outputBackedUp()) break;
      }
      this.pumpDone();
    } catch (error) {
      this.pumpFailed(error);
    }
    this.pumpFinally();
    return undefined;
  }

  /** The rest of a pump after a step returned a promise. */
  private async pumpAsync(pending: Promise<boolean>): Promise<void> {
    try {
      let progressed = await pending;
      while (progressed && !this.outputBackedUp()) {
        const next = this.step();
        progressed = typeof next === "boolean" ? next : await next;
      }
      this.pumpDone();
    } catch (error) {
      this.pumpFailed(error);
    } finally {
      this.running = null;
      this.pumpFinally();
    }
  }

  /**
   * After a step: writes the replies collected so far once they fill a batch, and tells whether the client
   * stopped reading them, in which case the pump stops until the output drains.
   */
  private outputBackedUp(): boolean {
    if (this.output.pending >= OUTPUT_BATCH) this.output.flush();
    return this.output.backedUp;
  }

  /** The client reads its replies again: the commands it sent meanwhile run now. */
  outputDrained(): void {
    if (!this.output.backedUp) return;
    this.output.unblock();
    if (this.phase !== CLOSED) void this.pump();
  }

  /** One step of the current phase: true if it consumed input or changed state, false if it needs more. */
  private step(): Awaitable<boolean> {
    const { phase } = this;
    switch (phase.kind) {
      case "command":
        return this.pumpCommand();
      case "body": {
        // No closure on the hot path: most steps of a message body settle at once.
        const progress = this.intake.pump(phase.message);
        if (typeof progress === "number") return this.progressed(progress);
        return progress.then((settled) => this.progressed(settled));
      }
      case "skip-chunk":
        return this.progressed(this.intake.skip(phase));
      case "auth":
        return this.pumpResponse(phase.exchange);
      default:
        return false;
    }
  }

  /** Input ran dry: the replies of the batch go out in one write. */
  private pumpDone(): void {
    this.output.flush();
    if (this.closeRequested && !this.inTransaction) this.closeForShutdown();
  }

  private pumpFailed(error: unknown): void {
    // A bug of ours, never the client's fault: log it, tell the client to retry later.
    this.hooks.log(this.ctx, "error", `internal error: ${describe(error)}`, error);
    this.shutdownNow(formatReply(421, "4.3.0", `${this.config.hostname} Internal error, closing connection`));
  }

  /** The pump stopped: when it ran dry (not held up by the output), the transport may send more. */
  private pumpFinally(): void {
    this.pumping = false;
    if (this.inputWanted && this.phase !== CLOSED && !this.output.backedUp) {
      this.inputWanted = false;
      this.transport.inputConsumed();
    }
  }

  /** Handles one command line if a whole one is buffered; false when more input is needed. */
  private pumpCommand(): Awaitable<boolean> {
    const { input, config } = this;
    const limit = commandLineLimit(
      input.bytes,
      input.offset,
      config.maxCommandLineLength,
      config.auth.mode !== "forbidden",
    );
    const taken = input.takeLine(limit);
    if (taken === TakenLine.None) {
      // An over-long line is dropped as it comes; an absurd one ends the session.
      if (input.skippedLineBytes > config.ioBufferMaxSize) {
        this.shutdownNow(
          formatReply(421, "4.7.0", `${config.hostname} Error: line too long, closing connection`),
        );
      }
      return false;
    }
    const more = input.buffered > 0;
    this.transport.commandCompleted();
    if (taken === TakenLine.TooLong) {
      this.answerError(new SmtpError(500, "Line too long", "5.5.2"));
      return true;
    }
    if (!input.lineEndsWithCrlf && config.crlfMode === "strict") {
      this.answerError(new SmtpError(500, "Syntax error: command lines must end with CRLF", "5.5.2"));
      return true;
    }
    const { bytes, lineStart, lineEnd } = input;
    let line: CommandLine;
    try {
      line = decodeCommandLine(bytes, lineStart, lineEnd);
    } catch (error) {
      this.answerError(undecodableLineError(bytes, lineStart, lineEnd, error));
      return true;
    }
    if (!config.pipelining && more && line.verb !== "BDAT") {
      // The seed's pipelining error: the client sent its next command before our reply (a BDAT
      // command is followed by its chunk by design).
      this.answerError(new SmtpError(500, "Bad input: PIPELINING is not enabled", "5.5.0"));
      return true;
    }
    this.hooks.observer?.command(this.ctx, line.verb);
    if (config.logDialog) {
      // An AUTH initial response is a secret: only the mechanism is logged.
      const shown = line.verb === "AUTH" ? `AUTH ${line.args.split(" ")[0]} ***` : line.text;
      this.hooks.log(this.ctx, "debug", `<<< ${shown}`);
    }
    if (config.pipelining && more && GROUP_ENDERS.has(line.verb)) {
      // RFC 2920 3.1 and Postfix's smtpd_forbid_unauth_pipelining: nothing may follow these unanswered.
      // Above all, message content sent before the 354 could carry smuggled commands.
      this.output.reply(formatReply(554, "5.5.0", "Error: SMTP protocol synchronization"));
      this.close();
      return false;
    }
    const dispatched = this.dispatch(line, more);
    return dispatched ? dispatched.then(() => !this.isClosed) : !this.isClosed;
  }

  /** One SASL response line, taken with the same framing as commands. */
  private pumpResponse(exchange: AuthExchange): Awaitable<boolean> {
    const taken = this.input.takeLine(MAX_SASL_LINE_OCTETS + 2);
    if (taken === TakenLine.None) return false;
    this.transport.commandCompleted();
    return thenCall(
      () => exchange.respond(taken === TakenLine.Line ? this.input.lineText() : null),
      (step) => {
        this.follow(this.commands.authStep(exchange, step));
        return !this.isClosed;
      },
    );
  }

  /** Acts on a step of the body pump. */
  private progressed(progress: BodyProgress): boolean {
    switch (progress) {
      case BodyProgress.NeedMore:
        return false;
      case BodyProgress.Commands:
        this.enter(COMMAND);
        return !this.isClosed;
      case BodyProgress.Close:
        this.close();
        return false;
      default:
        return !this.isClosed;
    }
  }

  /** Runs the command's handler; a promise only if a hook made it wait. */
  private dispatch(line: CommandLine, moreInput: boolean): Promise<void> | undefined {
    // A hook's own failure is transient for a command we know (451: the client retries, nothing is
    // lost); only an unknown command keeps the seed's 500.
    const fail = (error: unknown) =>
      this.answerError(error, KNOWN_VERBS.has(line.verb) ? 451 : 500, line.verb);
    try {
      // STARTTLS is the session's own: the handshake changes what it reads from.
      const next = line.verb === "STARTTLS" ? this.handleStartTls(line) : this.commands.run(line, moreInput);
      if (next instanceof Promise) return next.then((step) => this.follow(step)).catch(fail);
      this.follow(next);
    } catch (error) {
      fail(error);
    }
    return undefined;
  }

  /** What a command's handler said comes next. */
  private follow(next: NextStep): void {
    if (next === "close") this.close();
    else if (next) this.enter(next);
  }

  /** RFC 3207: 220, then the handshake; whatever was sent after the command is dropped (CVE-2011-0411). */
  private async handleStartTls(line: CommandLine): Promise<NextStep> {
    const { server } = this.ctx;
    if (!this.config.tls || !this.transport.startTls) throw SmtpError.code(502);
    requireNoArgs(line);
    if (server.encrypted) throw new SmtpError(503, "Error: TLS is already active", "5.5.1");
    if (this.transaction.state === TxState.NeedHelo) {
      throw new SmtpError(503, "Error: send EHLO first", "5.5.1");
    }
    this.output.reply(formatReply(220, "2.0.0", "Ready to start TLS"));
    this.output.flush();
    this.enter(TLS);
    this.input.drop();
    try {
      await this.transport.startTls();
    } catch (error) {
      this.hooks.log(this.ctx, "info", `STARTTLS failed: ${describe(error)}`);
      return "close";
    }
    if (this.isClosed) return undefined;
    // The handshake shows the client read the 220 and everything before it: output that was backed up
    // before it is not now (the transport's TLS layer is a new output).
    this.output.unblock();
    // RFC 3207 4.2: the session starts over; nothing learnt in plaintext is kept.
    this.transaction.restart();
    server.helo = "";
    server.heloCommand = "";
    server.authorizationId = "";
    server.authenticationId = "";
    server.authenticated = null;
    server.authMechanism = "";
    this.hooks.log(this.ctx, "debug", `TLS established: ${server.tls?.protocol} ${server.tls?.cipher}`);
    return COMMAND;
  }

  /** Answers an error as a `verb` command's failure (counted, and closing when it says so). */
  private answerError(error: unknown, defaultCode = 500, verb = ""): void {
    if (this.output.answerError(error, defaultCode, verb)) this.close();
  }

  /**
   * Moves to the next phase, unless the session closed meanwhile: a hook that settles after a timeout, a
   * shutdown or the client's going must not open the session again (it would read and answer input).
   */
  private enter(phase: Phase): void {
    if (this.phase !== CLOSED) this.phase = phase;
  }

  private close(): void {
    if (this.phase === CLOSED) return;
    this.output.flush();
    this.transaction.abandon(new Error("session closed"));
    this.phase = CLOSED;
    this.input.drop();
    this.output.close();
    this.transport.close();
  }
}
