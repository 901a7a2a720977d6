/**
 * The state machine of one SMTP session (RFC 5321 4.1.4 and 4.3.2): bytes in, replies out, hooks called
 * in between. It never touches a socket, timer or file: a transport feeds it bytes and carries its
 * replies, so tests and fuzzers drive it the same way a TCP connection does.
 *
 * Replies to a pipelined batch (RFC 2920) are collected and written in one piece when the input runs
 * dry; the state machine itself is the seed's (`process_line` of MidiSmtpServer), tightened where the
 * RFCs or safety demand it.
 */
import { MAX_SASL_LINE_OCTETS, type SaslMechanismName } from "../sasl/mechanism.js";
import { AuthExchange, type AuthFailureLimit } from "./auth-exchange.js";
import { BdatReader } from "./bdat.js";
import {
  type CommandLine,
  decodeCommandLine,
  isAsciiText,
  parseEsmtpParams,
  parsePathArgument,
} from "./commands.js";
import { emptyEnvelope, type SessionContext, writeOutsideData } from "./context.js";
import { type CrlfMode, DataDecoder, DecodeStop } from "./data.js";
import { adoptResponseCode, replyFromHookText, SmtpError } from "./errors.js";
import { heloArgument } from "./helo.js";
import type { SessionHooks } from "./hooks.js";
import { type Awaitable, thenCall } from "./maybe-async.js";
import { MessageReceiver, type MessageResult } from "./message.js";
import { recipientDsn, recordMailParameters } from "./parameters.js";
import { formatReply, replyCode } from "./replies.js";
import {
  applyXclient,
  type Forwarded,
  parseXforward,
  XCLIENT_ATTRIBUTES,
  XFORWARD_ATTRIBUTES,
} from "./xclient.js";

/** How the session reaches its peer; implemented by the server's connection driver and by tests. */
export interface SessionTransport {
  /**
   * Sends replies; false when the client is not reading them (its output is backed up): the session then
   * runs no further command until `outputDrained()` is called.
   */
  write(text: string): boolean;
  /** Ends the connection once written replies are flushed. */
  close(): void;
  pauseInput(): void;
  resumeInput(): void;
  /** A command was answered: the per-command deadline starts again. */
  commandCompleted(): void;
  /** `bytes` of message data arrived: the DATA deadline grows by bytes / minimum data rate. */
  dataReceived(bytes: number): void;
  /**
   * STARTTLS: stop reading plaintext, perform the server side of the handshake, fill ctx.server.encrypted
   * and ctx.server.tls, and resume reading decrypted bytes. Rejects (and ends the connection) on failure.
   */
  startTls?(): Promise<void>;
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
  /** HELO/EHLO/LHLO must name a domain or an address literal (RFC 5321 4.1.1.1); see helo.ts. */
  heloStrict: boolean;
  /** Longest command line in octets including CRLF (RFC 5321 4.5.3.1.4: 512). */
  maxCommandLineLength: number;
  /** Bytes of one unterminated line after which the connection is dropped. */
  ioBufferMaxSize: number;
  /** highWaterMark of the stream given to onMessageStream. */
  messageChunkSize: number;
  /** Log every command and reply at debug severity. */
  logDialog: boolean;
}

/**
 * The session as the helpers that run its longer exchanges see it (AuthExchange, BdatReader): what they
 * read, and what they may do. Each helper picks the members it uses.
 */
export interface SessionView {
  readonly config: SessionConfig;
  readonly ctx: SessionContext;
  readonly hooks: SessionHooks;
  readonly transport: SessionTransport;
  /** The buffered input; `inputPos` is its first unread byte. */
  readonly input: Buffer;
  inputPos: number;
  /** Forgets the buffered input (an over-long line is dropped as it comes). */
  dropInput(): void;
  readonly isClosed: boolean;
  /** Queues a reply; the batch is written when the input runs dry. */
  reply(text: string): void;
  /** Answers an error as a command's failure (counted, and closing when it says so). */
  answerError(error: unknown, defaultCode?: number): void;
  close(): void;
  /** The next input is commands. */
  expectCommands(): void;
  /** The next input is the client's responses to a SASL challenge, not commands. */
  expectSaslResponses(): void;
  /** The message being received, if any. */
  readonly receiver: MessageReceiver | null;
  /** Answers a data hook's 421 and closes; true if it did. */
  closedByHook(closing: SmtpError | null): boolean;
  /** The checks a message's first octets need: a transaction with recipients, TLS and AUTH as required. */
  requireRecipients(): void;
  /** Starts receiving a message. */
  newReceiver(): MessageReceiver;
  /** Forgets the message under way; the envelope stays. */
  resetMessage(): void;
  /** Forgets the transaction: envelope and message. */
  resetTransaction(): void;
  /** Hands a complete message over and answers it. */
  finishMessage(receiver: MessageReceiver): Awaitable<void>;
  /** Message octets up to `pos` were read: the input moves on and the data deadline grows. */
  consumeData(pos: number): void;
  /** The next input is the octets of an accepted BDAT chunk. */
  expectChunk(): void;
  /** The next input is the octets of a refused BDAT chunk, to drop. */
  expectDiscardedChunk(): void;
}

enum Phase {
  Greeting = 0,
  Command = 1,
  /** Reading DATA up to <CRLF>.<CRLF>. */
  Data = 2,
  /** Reading the octets of a BDAT chunk into the message. */
  Chunk = 3,
  /** Discarding the octets of a refused BDAT chunk. */
  SkipChunk = 4,
  /** Reading the client's responses of a SASL exchange. */
  Auth = 5,
  /** Waiting for the TLS handshake after STARTTLS: no input is read. */
  Tls = 6,
  Closed = 7,
}

enum TxState {
  NeedHelo = 0,
  Ready = 1,
  Mail = 2,
  Rcpt = 3,
}

const LF = 10;
const EMPTY = Buffer.alloc(0);
/** Input kept while a hook runs before the socket is paused. */
const INPUT_HIGH_WATER = 256 * 1024;
/**
 * Replies collected in one pass over pipelined input before they are written: the transport then says
 * whether the client reads them, and a client that does not gets no more of its commands run. Without
 * it, 256 KiB of 5-byte HELP commands would queue 5 MB of replies.
 */
const OUTPUT_BATCH = 16 * 1024;
const MAX_KEPT_ERRORS = 100;

/**
 * RFC 2920 3.1: commands whose reply the client must see before it sends anything else. QUIT also ends a
 * group, but RFC 5321 4.1.1.10 wants its 221 whatever follows: it is answered, and nothing after it runs.
 */
const GROUP_ENDERS = new Set(["EHLO", "HELO", "LHLO", "DATA", "VRFY", "EXPN", "NOOP", "TURN"]);
/** Known SMTP verbs we do not offer: 502 rather than the unknown-command path. */
const NOT_IMPLEMENTED = new Set(["TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML"]);
/** A web client talking to the SMTP port: no point in a dialogue. */
const HTTP_VERBS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH"]);

/** The verbs dispatch() handles itself. */
export const KNOWN_VERBS: ReadonlySet<string> = new Set([
  "XCLIENT",
  "XFORWARD",
  "AUTH",
  "STARTTLS",
  "BDAT",
  "EHLO",
  "HELO",
  "LHLO",
  "MAIL",
  "RCPT",
  "DATA",
  "RSET",
  "NOOP",
  "QUIT",
  "HELP",
  "VRFY",
  "EXPN",
]);

const BAD_COMMAND_CODES = new Set([500, 501, 502, 503, 504, 555]);

export class SmtpSession {
  readonly ctx: SessionContext;
  private phase = Phase.Greeting;
  private tx = TxState.NeedHelo;
  private input: Buffer = EMPTY;
  private inputPos = 0;
  private inputPaused = false;
  private out = "";
  private pumping = false;
  private running: Promise<void> | null = null;
  private badCommands = 0;
  private skippedLineBytes = -1; // >= 0 while discarding an over-long command line
  /** The transport's output is backed up: no command runs until it drains. */
  private outputBlocked = false;
  /** Resolved when the output drains or the session ends (whenIdle waits on it). */
  private outputWaiter: { promise: Promise<void>; resolve: () => void } | null = null;
  private closeRequested = false;
  /** Between the end of a message and its reply: a shutdown waits for the reply. */
  private committing = false;

  // The message being received, and the decoder of its DATA.
  private receiver: MessageReceiver | null = null;
  private decoder: DataDecoder | null = null;
  /** BDAT: the chunks of the message, or of a refused command, being read. Made on the first BDAT. */
  private bdat: BdatReader | null = null;
  /** The AUTH exchange and its failure count: made on the first AUTH. */
  private authExchange: AuthExchange | null = null;
  /** What the AUTH and BDAT helpers see of this session: made when the first of them is. */
  private view: SessionView | null = null;
  /** XFORWARD attributes waiting for the next MAIL. */
  private forwarded: Forwarded | null = null;

  constructor(
    private readonly config: SessionConfig,
    private readonly hooks: SessionHooks,
    private readonly transport: SessionTransport,
    ctx: SessionContext,
  ) {
    this.ctx = ctx;
  }

  get isClosed(): boolean {
    return this.phase === Phase.Closed;
  }

  /**
   * Bytes received and not handled yet. Once the session is idle they are at most one unfinished command
   * or SASL line: longer lines are dropped as they come (the fuzzers check this bound).
   */
  get bufferedInputBytes(): number {
    return this.input.length - this.inputPos;
  }

  /** True while a mail transaction or message is under way (graceful shutdown waits for these). */
  get inTransaction(): boolean {
    return (
      this.tx === TxState.Mail ||
      this.tx === TxState.Rcpt ||
      this.phase === Phase.Data ||
      this.phase === Phase.Chunk ||
      this.phase === Phase.SkipChunk ||
      this.committing
    );
  }

  /** Runs the connect hook and sends the greeting (or the hook's refusal). */
  start(): Awaitable<void> {
    if (this.phase !== Phase.Greeting) return;
    return thenCall(
      () => this.hooks.onConnect(this.ctx),
      () => this.greet(),
      (thrown) => {
        const error = this.adopt(thrown);
        this.recordError(error);
        this.reply(this.errorReply(error, 421));
        this.close();
      },
    );
  }

  /** The connect hook let the client in: the greeting. */
  private greet(): void {
    if (this.phase !== Phase.Greeting) return;
    this.phase = Phase.Command;
    this.reply(formatReply(220, undefined, this.ctx.server.localResponse));
    this.flush();
    this.transport.commandCompleted();
  }

  /** Feeds bytes from the client. */
  receive(chunk: Buffer): void {
    if (this.phase === Phase.Closed) return;
    this.hooks.observer?.bytesReceived(this.ctx, chunk.length);
    if (this.phase === Phase.Greeting) {
      // RFC 5321 3.1: the client must wait for the greeting; talking first is a spambot's habit. It is
      // dropped at once, so that it holds nothing while it waits for a slot or the greeting pause.
      this.hooks.log(this.ctx, "info", `Early talker ${this.ctx.server.remoteIp}: data before the greeting`);
      this.hooks.observer?.connectionRefused("early-talker", this.ctx.server.remoteIp);
      this.reply(formatReply(554, "5.5.0", "Protocol error: data received before the greeting"));
      this.close();
      return;
    }
    if (this.phase === Phase.Tls) return; // plaintext after STARTTLS is never executed
    if (this.inputPos >= this.input.length) {
      this.input = chunk;
    } else {
      this.input = Buffer.concat([this.input.subarray(this.inputPos), chunk]);
    }
    this.inputPos = 0;
    if (
      (this.pumping || this.outputBlocked || this.receiver?.blocked) &&
      this.input.length > INPUT_HIGH_WATER &&
      !this.inputPaused
    ) {
      this.inputPaused = true;
      this.transport.pauseInput();
    }
    void this.pump();
  }

  /** The client closed its side: abandon the session (a half-received message is discarded). */
  end(): void {
    if (this.phase === Phase.Closed) return;
    this.abandonMessage(new Error("client disconnected"));
    this.phase = Phase.Closed;
    this.releaseOutputWaiter();
  }

  /**
   * The client closed its sending side: what it sent is still handled and answered, then the
   * connection ends; a message whose end never came is discarded.
   */
  inputEnded(): void {
    if (this.phase === Phase.Closed) return;
    void this.whenIdle().then(() => {
      if (this.phase === Phase.Closed) return;
      this.abandonMessage(new Error("client closed its side before the end of the message"));
      this.close();
    });
  }

  /** The per-command or data deadline passed. */
  timeout(): void {
    if (this.phase === Phase.Closed) return;
    // Also while committing: a hook that never settles must not hold the connection forever.
    this.abandonMessage(new SmtpError(421, "Timeout", "4.4.2"));
    this.reply(formatReply(421, "4.4.2", `${this.config.hostname} Error: timeout exceeded`));
    this.close();
  }

  /**
   * Graceful close for server shutdown: an idle session gets 421 now; one inside a transaction after
   * the transaction ends.
   */
  requestClose(): void {
    this.closeRequested = true;
    // Neither an AUTH exchange, a TLS handshake nor a greeting still to come is a transaction to finish.
    if (this.phase === Phase.Tls) this.close();
    else if (!this.pumping && !this.inTransaction) this.closeForShutdown();
  }

  /** Immediate close with 421 (forced shutdown, internal failure). */
  shutdownNow(reply = this.shutdownReply()): void {
    if (this.phase === Phase.Closed) return;
    if (this.phase === Phase.Tls) {
      // In the middle of the TLS handshake a plaintext reply would only corrupt it.
      this.close();
      return;
    }
    if (this.committing) {
      // The message is complete and being handed over: its 250 (or refusal) goes out first, then 421.
      this.closeRequested = true;
      return;
    }
    this.abandonMessage(new SmtpError(421, "Connection closed"));
    this.reply(reply);
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
    if (this.phase === Phase.Closed) return;
    this.reply(this.shutdownReply());
    this.close();
  }

  /**
   * Resolves once everything received so far has been handled and the session waits for more input
   * (not for a slow onMessageStream consumer).
   */
  async whenIdle(): Promise<void> {
    for (;;) {
      if (this.running) await this.running;
      else if (this.outputWaiter && !this.isClosed) await this.outputWaiter.promise;
      else if (this.receiver?.blocked && !this.isClosed)
        await new Promise((resolve) => setImmediate(resolve));
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
    if (this.outputBlocked) return undefined; // outputDrained() pumps again
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
    if (this.out.length >= OUTPUT_BATCH) this.flush();
    return this.outputBlocked;
  }

  /** The client reads its replies again: the commands it sent meanwhile run now. */
  outputDrained(): void {
    if (!this.outputBlocked) return;
    this.outputBlocked = false;
    this.releaseOutputWaiter();
    if (this.phase !== Phase.Closed) void this.pump();
  }

  private releaseOutputWaiter(): void {
    const waiter = this.outputWaiter;
    this.outputWaiter = null;
    waiter?.resolve();
  }

  /** One step of the current phase: true if it consumed input or changed state, false if it needs more. */
  private step(): Awaitable<boolean> {
    switch (this.phase) {
      case Phase.Command:
        return this.pumpCommand();
      case Phase.Data:
        return this.pumpData();
      case Phase.Chunk:
        return (this.bdat as BdatReader).pumpChunk();
      case Phase.SkipChunk:
        return (this.bdat as BdatReader).skipChunk();
      case Phase.Auth:
        return (this.authExchange as AuthExchange).pumpResponse();
      default:
        return false;
    }
  }

  /** Input ran dry: the replies of the batch go out in one write. */
  private pumpDone(): void {
    this.flush();
    if (this.closeRequested && !this.inTransaction) this.closeForShutdown();
  }

  private pumpFailed(error: unknown): void {
    // A bug of ours, never the client's fault: log it, tell the client to retry later.
    this.hooks.log(this.ctx, "error", `internal error: ${describe(error)}`, error);
    this.shutdownNow(formatReply(421, "4.3.0", `${this.config.hostname} Internal error, closing connection`));
  }

  private pumpFinally(): void {
    this.pumping = false;
    if (this.inputPaused && this.phase !== Phase.Closed && !this.outputBlocked && !this.receiver?.blocked) {
      this.inputPaused = false;
      this.transport.resumeInput();
    }
  }

  /** Handles one command line if a whole one is buffered; false when more input is needed. */
  private pumpCommand(): Awaitable<boolean> {
    const { input, config } = this;
    const start = this.inputPos;
    const lf = input.indexOf(LF, start);
    const maxLength = this.commandLineLimit(input, start);
    if (lf === -1) {
      const pending = input.length - start;
      if (this.skippedLineBytes >= 0 || pending > maxLength) {
        // Do not buffer an over-long line: drop it as it comes, and give up on absurd ones.
        this.skippedLineBytes = Math.max(this.skippedLineBytes, 0) + pending;
        this.dropInput();
        if (this.skippedLineBytes > config.ioBufferMaxSize) {
          this.shutdownNow(
            formatReply(421, "4.7.0", `${config.hostname} Error: line too long, closing connection`),
          );
        }
      }
      return false;
    }
    this.inputPos = lf + 1;
    const more = this.inputPos < input.length;
    const tooLong = this.skippedLineBytes >= 0 || lf + 1 - start > maxLength;
    this.skippedLineBytes = -1;
    this.transport.commandCompleted();

    if (tooLong) {
      this.answerError(new SmtpError(500, "Line too long", "5.5.2"));
      return true;
    }
    let end = lf;
    if (end > start && input[end - 1] === 13) {
      end--;
    } else if (config.crlfMode === "strict") {
      this.answerError(new SmtpError(500, "Syntax error: command lines must end with CRLF", "5.5.2"));
      return true;
    }
    let line: CommandLine;
    try {
      line = decodeCommandLine(input.subarray(start, end));
    } catch (error) {
      // A BDAT or DATA line that cannot even be decoded (NUL, CR, invalid UTF-8) still announced message
      // octets whose framing a front end may read otherwise (Postfix takes CR for white space): the
      // session ends, as for any BDAT whose size cannot be read.
      const verb = dataVerbOf(input, start, end);
      this.answerError(verb === "" ? error : unreadable(verb));
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
      this.reply(formatReply(554, "5.5.0", "Error: SMTP protocol synchronization"));
      this.close();
      return false;
    }
    const dispatched = this.dispatch(line, more);
    return dispatched ? dispatched.then(() => !this.isClosed) : !this.isClosed;
  }

  /**
   * The longest command line allowed at `start`, CRLF included: maxCommandLineLength, except for AUTH,
   * whose initial response may make the line 12,288 octets long (RFC 4954 4; XOAUTH2 tokens need it).
   */
  private commandLineLimit(input: Buffer, start: number): number {
    const { maxCommandLineLength, auth } = this.config;
    if (auth.mode === "forbidden" || input.length - start < 5) return maxCommandLineLength;
    // "AUTH " in any case: bit 0x20 folds the letters.
    const isAuth =
      ((input[start] as number) | 0x20) === 0x61 &&
      ((input[start + 1] as number) | 0x20) === 0x75 &&
      ((input[start + 2] as number) | 0x20) === 0x74 &&
      ((input[start + 3] as number) | 0x20) === 0x68 &&
      input[start + 4] === 0x20;
    return isAuth ? Math.max(maxCommandLineLength, MAX_SASL_LINE_OCTETS + 2) : maxCommandLineLength;
  }

  /** Runs the command's handler; a promise only if a hook made it wait. */
  private dispatch(line: CommandLine, moreInput: boolean): Promise<void> | undefined {
    // A hook's own failure is transient for a command we know (451: the client retries, nothing is
    // lost); only an unknown command keeps the seed's 500.
    const fail = (error: unknown) => this.answerError(error, KNOWN_VERBS.has(line.verb) ? 451 : 500);
    try {
      const handled = this.route(line, moreInput);
      if (handled instanceof Promise) return handled.catch(fail);
    } catch (error) {
      fail(error);
    }
    return undefined;
  }

  private route(line: CommandLine, moreInput: boolean): Awaitable<void> {
    switch (line.verb) {
      case "EHLO":
      case "HELO":
      case "LHLO":
        return this.handleHelo(line);
      case "MAIL":
        return this.handleMail(line);
      case "RCPT":
        return this.handleRcpt(line);
      case "DATA":
        return this.handleData(line);
      case "BDAT":
        this.bdat ??= new BdatReader(this.sessionView());
        return this.bdat.handle(line);
      case "STARTTLS":
        return this.handleStartTls(line);
      case "XCLIENT":
        return this.handleXclient(line);
      case "XFORWARD":
        return this.handleXforward(line);
      case "AUTH":
        return this.handleAuth(line, moreInput);
      case "RSET":
        this.requireNoArgs(line);
        this.requireTls();
        this.resetTransaction();
        return this.reply(formatReply(250, "2.0.0", "Ok"));
      case "NOOP":
        return this.reply(formatReply(250, "2.0.0", "Ok"));
      case "QUIT":
        this.requireNoArgs(line);
        this.reply(formatReply(221, "2.0.0", `${this.config.hostname} Service closing transmission channel`));
        return this.close();
      case "HELP":
        return this.reply(
          formatReply(214, "2.0.0", [
            "Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY EXPN HELP",
            "See RFC 5321 for their use",
          ]),
        );
      case "VRFY":
        return this.handleVrfy(line);
      case "EXPN":
        return this.handleExpn(line);
      default:
        return this.handleOther(line);
    }
  }

  private handleHelo(line: CommandLine): Awaitable<void> {
    const { config } = this;
    if (config.lmtp !== (line.verb === "LHLO")) {
      // RFC 2033 4.1: an LMTP server greets with LHLO only; an SMTP server does not know LHLO.
      throw new SmtpError(
        500,
        config.lmtp ? "Error: this is LMTP, use LHLO" : "Error: this is SMTP, use EHLO",
        "5.5.1",
      );
    }
    const heloData = heloArgument(line, config.heloStrict);
    return thenCall(
      () => this.hooks.onHelo(this.ctx, heloData),
      () => this.greeted(line.verb, heloData),
    );
  }

  /** The HELO/EHLO/LHLO hook accepted `heloData`: the session starts over and the greeting is answered. */
  private greeted(verb: string, heloData: string): void {
    const { config } = this;
    // RFC 5321 4.1.4: a later EHLO/HELO resets the session like RSET.
    this.resetTransaction();
    const { server } = this.ctx;
    server.helo = heloData;
    server.heloCommand = verb;
    this.tx = TxState.Ready;
    if (verb === "HELO") {
      this.reply(formatReply(250, undefined, server.heloResponse));
      return;
    }
    const lines = [server.heloResponse];
    if (config.pipelining) lines.push("PIPELINING");
    if (config.internationalization) lines.push("8BITMIME", "SMTPUTF8");
    if (config.chunking) lines.push("CHUNKING", "BINARYMIME");
    if (config.dsn) lines.push("DSN");
    const { encrypted } = server;
    if (config.auth.mode !== "forbidden" && (encrypted || config.auth.overPlaintext)) {
      lines.push(`AUTH ${config.auth.mechanisms.join(" ")}`);
    }
    if (config.tls && this.transport.startTls && !encrypted) lines.push("STARTTLS");
    if (config.requireTls && encrypted) lines.push("REQUIRETLS");
    if (this.transport.xclientTrusted) {
      lines.push(`XCLIENT ${XCLIENT_ATTRIBUTES.join(" ")}`, `XFORWARD ${XFORWARD_ATTRIBUTES.join(" ")}`);
    }
    lines.push(config.maxMessageSize > 0 ? `SIZE ${config.maxMessageSize}` : "SIZE");
    lines.push("ENHANCEDSTATUSCODES", "HELP");
    this.reply(formatReply(250, undefined, lines));
  }

  private handleMail(line: CommandLine): Awaitable<void> {
    if (this.tx === TxState.NeedHelo) throw new SmtpError(503, "Error: send HELO/EHLO first", "5.5.1");
    if (this.tx !== TxState.Ready) throw new SmtpError(503, "Error: nested MAIL command", "5.5.1");
    this.requireSecurity();
    const { config } = this;
    const { address, params } = parsePathArgument(line.args, "FROM:", config.internationalization);
    // A fresh envelope: what an earlier, refused MAIL recorded (SMTPUTF8, BODY, SIZE) must not carry over.
    const envelope = emptyEnvelope();
    if (this.forwarded) envelope.forwarded = this.forwarded;
    this.ctx.envelope = envelope;
    recordMailParameters(envelope, params, config, this.ctx.server.encrypted !== null);
    if (envelope.encodingUtf8 !== "utf8" && !isAsciiText(address)) {
      throw new SmtpError(553, "Non-ASCII address requires the SMTPUTF8 parameter", "5.6.7");
    }
    return thenCall(
      () => this.hooks.onMailFrom(this.ctx, address, params),
      (returned) => {
        const accepted = addressOrReply(returned, address);
        envelope.from = accepted.address;
        envelope.mailParams = params;
        this.tx = TxState.Mail;
        this.reply(formatReply(250, "2.1.0", accepted.text));
      },
    );
  }

  private handleRcpt(line: CommandLine): Awaitable<void> {
    if (this.tx !== TxState.Mail && this.tx !== TxState.Rcpt) {
      throw new SmtpError(503, "Error: need MAIL command", "5.5.1");
    }
    this.requireSecurity();
    const envelope = this.ctx.envelope;
    if (envelope.to.length >= this.config.maxRecipients) {
      throw new SmtpError(452, "Error: too many recipients", "4.5.3");
    }
    if (this.bdat?.inMessage) throw new SmtpError(503, "Error: RCPT after BDAT", "5.5.1");
    const { address, params } = parsePathArgument(line.args, "TO:", envelope.encodingUtf8 === "utf8");
    const dsn = recipientDsn(params, this.config.dsn);
    return thenCall(
      () => this.hooks.onRcptTo(this.ctx, address, params),
      (returned) => {
        const accepted = addressOrReply(returned, address);
        envelope.to.push(accepted.address);
        envelope.rcptParams.push(params);
        envelope.rcptDsn.push(dsn);
        this.tx = TxState.Rcpt;
        this.reply(formatReply(250, "2.1.5", accepted.text));
      },
    );
  }

  /** RFC 3207: 220, then the handshake; whatever was sent after the command is dropped (CVE-2011-0411). */
  private async handleStartTls(line: CommandLine): Promise<void> {
    const { server } = this.ctx;
    if (!this.config.tls || !this.transport.startTls) throw SmtpError.code(502);
    this.requireNoArgs(line);
    if (server.encrypted) throw new SmtpError(503, "Error: TLS is already active", "5.5.1");
    if (this.tx === TxState.NeedHelo) throw new SmtpError(503, "Error: send EHLO first", "5.5.1");
    this.reply(formatReply(220, "2.0.0", "Ready to start TLS"));
    this.flush();
    this.enter(Phase.Tls);
    this.dropInput();
    try {
      await this.transport.startTls();
    } catch (error) {
      this.hooks.log(this.ctx, "info", `STARTTLS failed: ${describe(error)}`);
      this.close();
      return;
    }
    if (this.isClosed) return;
    // The handshake shows the client read the 220 and everything before it: output that was backed up
    // before it is not now (the transport's TLS layer is a new output).
    this.outputBlocked = false;
    this.releaseOutputWaiter();
    // RFC 3207 4.2: the session starts over; nothing learnt in plaintext is kept.
    this.resetTransaction();
    this.tx = TxState.NeedHelo;
    server.helo = "";
    server.heloCommand = "";
    server.authorizationId = "";
    server.authenticationId = "";
    server.authenticated = null;
    server.authMechanism = "";
    this.enter(Phase.Command);
    this.hooks.log(this.ctx, "debug", `TLS established: ${server.tls?.protocol} ${server.tls?.cipher}`);
  }

  /**
   * RFC 4954 4: AUTH after EHLO, outside a mail transaction, and once per session; what follows the
   * command is AuthExchange's.
   */
  private async handleAuth(line: CommandLine, moreInput: boolean): Promise<void> {
    const { server } = this.ctx;
    if (this.config.auth.mode === "forbidden") throw SmtpError.code(502);
    if (this.tx === TxState.NeedHelo) throw new SmtpError(503, "Error: send EHLO first", "5.5.1");
    if (this.tx !== TxState.Ready)
      throw new SmtpError(503, "Error: AUTH is not allowed in a transaction", "5.5.1");
    if (server.authenticated) throw new SmtpError(503, "Error: already authenticated", "5.5.1");
    this.requireTls();
    this.authExchange ??= new AuthExchange(this.sessionView());
    await this.authExchange.start(line.args, moreInput);
  }

  /** tlsMode required: nothing but EHLO, STARTTLS, NOOP, HELP and QUIT before TLS. */
  private requireTls(): void {
    if (this.config.tlsRequired && !this.ctx.server.encrypted) {
      throw new SmtpError(530, "Must issue a STARTTLS command first", "5.7.0");
    }
  }

  /** tlsMode and authMode required: the mail commands need both first. */
  private requireSecurity(): void {
    this.requireTls();
    if (this.config.auth.mode === "required" && !this.ctx.server.authenticated) {
      throw new SmtpError(530, "Authentication required", "5.7.0");
    }
  }

  /** DATA or BDAT: a transaction with recipients, and the security the server requires. */
  private requireRecipients(): void {
    if (this.tx === TxState.Mail) throw new SmtpError(503, "Error: no valid recipients", "5.5.1");
    if (this.tx !== TxState.Rcpt) throw new SmtpError(503, "Error: need RCPT command", "5.5.1");
    this.requireSecurity();
  }

  /** XCLIENT: a trusted front end names the real client; the session starts over with a 220. */
  private handleXclient(line: CommandLine): void {
    if (!this.transport.xclientTrusted)
      throw new SmtpError(550, "Error: insufficient authorization", "5.7.0");
    if (this.inTransaction)
      throw new SmtpError(503, "Error: XCLIENT is not allowed in a transaction", "5.5.1");
    applyXclient(parseEsmtpParams(` ${line.args}`), this.ctx.server);
    this.resetTransaction();
    this.forwarded = null;
    this.tx = TxState.NeedHelo;
    this.reply(formatReply(220, undefined, this.ctx.server.localResponse));
  }

  /** XFORWARD: the original client's attributes, kept for the next transaction's envelope. */
  private handleXforward(line: CommandLine): void {
    if (!this.transport.xclientTrusted)
      throw new SmtpError(550, "Error: insufficient authorization", "5.7.0");
    if (this.inTransaction)
      throw new SmtpError(503, "Error: XFORWARD is not allowed in a transaction", "5.5.1");
    this.forwarded = parseXforward(parseEsmtpParams(` ${line.args}`), this.forwarded ?? {});
    this.reply(formatReply(250, "2.0.0", "Ok"));
  }

  private async handleVrfy(line: CommandLine): Promise<void> {
    if (line.args === "") throw new SmtpError(501, "Syntax: VRFY address", "5.5.4");
    // RFC 5321 3.5.3: never 250 unless something really verified the address.
    if (!this.hooks.onVrfy) {
      return this.reply(
        formatReply(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery"),
      );
    }
    const mailbox = await this.hooks.onVrfy(this.ctx, line.args);
    this.reply(formatReply(250, "2.1.5", mailbox));
  }

  private async handleExpn(line: CommandLine): Promise<void> {
    if (line.args === "") throw new SmtpError(501, "Syntax: EXPN list", "5.5.4");
    if (!this.hooks.onExpn) throw new SmtpError(502, "EXPN not available", "5.5.1");
    const members = await this.hooks.onExpn(this.ctx, line.args);
    if (members.length === 0) throw new SmtpError(550, "No such list", "5.1.1");
    this.reply(formatReply(250, "2.1.5", members));
  }

  private async handleOther(line: CommandLine): Promise<void> {
    if (HTTP_VERBS.has(line.verb)) {
      this.hooks.log(this.ctx, "warn", `HTTP request on the SMTP port from ${this.ctx.server.remoteIp}`);
      this.reply(formatReply(421, "4.7.0", `${this.config.hostname} Error: this is an SMTP server`));
      return this.close();
    }
    if (NOT_IMPLEMENTED.has(line.verb)) throw SmtpError.code(502);
    await this.hooks.onProcessLineUnknown(this.ctx, line.text);
    throw SmtpError.code(500);
  }

  private handleData(line: CommandLine): Awaitable<void> {
    this.requireNoArgs(line);
    this.requireRecipients();
    if (this.bdat?.inMessage) throw new SmtpError(503, "Error: DATA after BDAT in one transaction", "5.5.1");
    if (this.ctx.envelope.encodingBody === "binarymime") {
      // RFC 3030 3: BINARYMIME content cannot be sent with DATA.
      throw new SmtpError(503, "Error: BODY=BINARYMIME requires BDAT", "5.5.1");
    }
    const receiver = this.newReceiver();
    this.enter(Phase.Data);
    return thenCall(
      () => receiver.begin(),
      () => {
        this.decoder = new DataDecoder(this.config.crlfMode, (bytes) => receiver.write(bytes));
        this.reply(formatReply(354, undefined, 'Enter message, ending with "." on a line by itself'));
      },
      (error) => {
        // Refused before the 354: the client keeps its transaction and may RSET or try again.
        this.enter(Phase.Command);
        this.resetMessage();
        throw error;
      },
    );
  }

  private newReceiver(): MessageReceiver {
    const { config } = this;
    const receiver = new MessageReceiver(
      this.ctx,
      this.hooks,
      { maxMessageSize: config.maxMessageSize, streamHighWaterMark: config.messageChunkSize },
      () => void this.pump(),
    );
    this.receiver = receiver;
    this.ctx.message.write = (bytes) => receiver.insert(bytes);
    return receiver;
  }

  /** Decodes buffered message data; false when more input is needed (or the stream consumer is slow). */
  private pumpData(): Awaitable<boolean> {
    const receiver = this.receiver as MessageReceiver;
    if (receiver.blocked) return false;
    const decoder = this.decoder as DataDecoder;
    const start = this.inputPos;
    const size = this.ctx.message.bytesize;
    this.consumeData(decoder.decode(this.input, start));
    const input = this.input;
    if (this.ctx.message.bytesize === size) return this.dataStopped(receiver, decoder, input);
    // The receiving hook sees every chunk of data, before the end of headers or of the message is handled.
    return thenCall(
      () => receiver.receiving(),
      (closing) => !this.closedByHook(closing) && this.dataStopped(receiver, decoder, input),
    );
  }

  private consumeData(pos: number): void {
    const read = pos - this.inputPos;
    this.inputPos = pos;
    if (read > 0) this.transport.dataReceived(read);
  }

  /** Acts on what stopped the decoder: the end of the headers, of the message, or of the input. */
  private dataStopped(receiver: MessageReceiver, decoder: DataDecoder, input: Buffer): Awaitable<boolean> {
    switch (decoder.stop) {
      case DecodeStop.HeadersEnd:
        return thenCall(
          () => receiver.headersEnded(),
          (closing) => !this.closedByHook(closing),
        );
      case DecodeStop.End:
        if (this.config.crlfMode === "strict" && decoder.bareLineBreaks > 0) {
          receiver.fail(new SmtpError(550, "Error: bare CR or LF in message data", "5.5.2"));
        }
        return thenCall(
          () => this.finishMessage(receiver),
          () => {
            this.transport.commandCompleted();
            return !this.isClosed;
          },
        );
      default:
        // Input that arrived while a hook ran replaced the buffer: go on with it.
        return this.input !== input;
    }
  }

  /** A data hook that threw 421 gets its reply now and the connection closes. */
  private closedByHook(closing: SmtpError | null): boolean {
    if (!closing) return false;
    this.recordError(closing);
    this.reply(closing.render());
    this.close();
    return true;
  }

  private finishMessage(receiver: MessageReceiver): Awaitable<void> {
    this.committing = true;
    return thenCall(
      () => receiver.finish(),
      (result) => {
        this.committing = false;
        this.answerMessage(result);
      },
      (error) => {
        this.committing = false;
        throw error;
      },
    );
  }

  /** The reply (or, in LMTP, the replies) to a complete message, and the end of its transaction. */
  private answerMessage({ error, value }: MessageResult): void {
    const recipients = this.ctx.envelope.to;
    this.enter(Phase.Command);
    // The message is over: the reset must not abandon it (nor build an error to say so).
    this.receiver = null;
    this.resetTransaction();
    if (this.config.lmtp) {
      // RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
      const outcomes = Array.isArray(value) ? value : [];
      recipients.forEach((recipient, index) => {
        this.answerOutcome(error ?? outcomes[index], typeof value === "string" ? value : `<${recipient}> Ok`);
      });
    } else {
      // SMTP has one reply: per-recipient results that hold a refusal refuse the whole message.
      const refusal = Array.isArray(value) ? value.find((outcome) => outcome instanceof Error) : undefined;
      this.answerOutcome(error ?? refusal, typeof value === "string" ? value : "Ok: message accepted");
    }
  }

  /** The reply to a message (or, in LMTP, to one recipient of it): an error, a 250 text, or the default. */
  private answerOutcome(outcome: unknown, acceptedText: string): void {
    if (
      outcome instanceof Error ||
      (outcome !== undefined && outcome !== null && typeof outcome !== "string")
    ) {
      this.answerError(outcome, 451);
      this.hooks.observer?.messageRefused(this.ctx);
      return;
    }
    const text = replyFromHookText(typeof outcome === "string" ? outcome : acceptedText);
    if (text instanceof SmtpError) {
      this.answerError(text);
      this.hooks.observer?.messageRefused(this.ctx);
    } else {
      this.reply(formatReply(250, "2.0.0", text));
      this.hooks.observer?.messageAccepted(this.ctx);
    }
  }

  private abandonMessage(reason: unknown): void {
    this.receiver?.abandon(reason);
  }

  private resetMessage(): void {
    // RSET or EHLO between BDAT chunks: the consumer learns that the message will not come.
    this.receiver?.abandon(new SmtpError(451, "Transaction reset before the message was complete", "4.3.0"));
    this.decoder = null;
    this.bdat?.endMessage();
    this.receiver = null;
    const message = this.ctx.message;
    message.write = writeOutsideData;
    message.received = null;
    message.delivered = null;
    message.bytesize = 0;
    message.headers = false;
    message.data = EMPTY;
  }

  private resetTransaction(): void {
    this.ctx.envelope = emptyEnvelope();
    this.forwarded = null; // XFORWARD describes one transaction
    this.resetMessage();
    if (this.tx !== TxState.NeedHelo) this.tx = TxState.Ready;
  }

  private requireNoArgs(line: CommandLine): void {
    if (line.args !== "") throw new SmtpError(501, `Syntax: ${line.verb} takes no arguments`, "5.5.4");
  }

  /**
   * Answers an error: SmtpErrors carry their reply; anything else is a hook's failure, logged and
   * answered with the default (500, or 451 during DATA) without leaking its text.
   */
  private answerError(thrown: unknown, defaultCode = 500): void {
    const error = this.adopt(thrown);
    this.recordError(error);
    const reply = this.errorReply(error, defaultCode);
    this.reply(reply);
    if (error instanceof SmtpError && error.closesConnection) {
      this.close();
    } else if (error instanceof SmtpError && BAD_COMMAND_CODES.has(error.code)) {
      this.badCommands++;
      if (this.badCommands > this.config.maxBadCommands) {
        this.reply(
          formatReply(421, "4.7.0", `${this.config.hostname} Error: too many errors, closing connection`),
        );
        this.close();
      }
    }
  }

  /** An error a hook threw in smtp-server's way (with a responseCode) as the SmtpError it asks for. */
  private adopt(error: unknown): unknown {
    const adopted = adoptResponseCode(error);
    if (adopted !== error) this.hooks.log(this.ctx, "info", `hook failed: ${describe(error)}`);
    return adopted;
  }

  private errorReply(error: unknown, defaultCode: number): string {
    if (error instanceof SmtpError) return error.render();
    this.hooks.log(this.ctx, "error", `hook failed: ${describe(error)}`, error);
    this.hooks.observer?.hookFailed(this.ctx, error);
    return SmtpError.code(defaultCode).render();
  }

  private recordError(error: unknown): void {
    const { server } = this.ctx;
    server.exceptions++;
    server.errors.push(error instanceof Error ? error : new Error(String(error)));
    if (server.errors.length > MAX_KEPT_ERRORS) server.errors.shift();
    if (error instanceof SmtpError) this.hooks.log(this.ctx, "debug", error.message);
  }

  private dropInput(): void {
    this.input = EMPTY;
    this.inputPos = 0;
  }

  /** This session as its helpers see it; one object per session, shared by the helpers. */
  private sessionView(): SessionView {
    if (this.view) return this.view;
    const session = this;
    this.view = {
      config: this.config,
      ctx: this.ctx,
      hooks: this.hooks,
      transport: this.transport,
      get input() {
        return session.input;
      },
      get inputPos() {
        return session.inputPos;
      },
      set inputPos(pos: number) {
        session.inputPos = pos;
      },
      dropInput: () => this.dropInput(),
      get isClosed() {
        return session.isClosed;
      },
      reply: (text) => this.reply(text),
      answerError: (error, defaultCode) => this.answerError(error, defaultCode),
      close: () => this.close(),
      expectCommands: () => {
        this.enter(Phase.Command);
      },
      expectSaslResponses: () => {
        this.enter(Phase.Auth);
      },
      get receiver() {
        return session.receiver;
      },
      closedByHook: (closing) => this.closedByHook(closing),
      requireRecipients: () => this.requireRecipients(),
      newReceiver: () => this.newReceiver(),
      resetMessage: () => this.resetMessage(),
      resetTransaction: () => this.resetTransaction(),
      finishMessage: (receiver) => this.finishMessage(receiver),
      consumeData: (pos) => this.consumeData(pos),
      expectChunk: () => {
        this.enter(Phase.Chunk);
      },
      expectDiscardedChunk: () => {
        this.enter(Phase.SkipChunk);
      },
    };
    return this.view;
  }

  private reply(text: string): void {
    if (this.phase === Phase.Closed) return;
    if (this.config.logDialog) this.logReply(text);
    this.hooks.observer?.reply(this.ctx, replyCode(text));
    this.out += text;
  }

  /** One debug event per reply line: a multi-line reply (EHLO's) must not make unprefixed log lines. */
  private logReply(text: string): void {
    for (const line of text.trimEnd().split("\r\n")) this.hooks.log(this.ctx, "debug", `>>> ${line}`);
  }

  private flush(): void {
    if (this.out === "") return;
    const text = this.out;
    this.out = "";
    if (!this.transport.write(text) && !this.outputBlocked) {
      this.outputBlocked = true;
      let resolve = () => {};
      const promise = new Promise<void>((settle) => {
        resolve = settle;
      });
      this.outputWaiter = { promise, resolve };
    }
  }

  /**
   * Moves to the next phase, unless the session closed meanwhile: a hook that settles after a timeout, a
   * shutdown or the client's going must not open the session again (it would read and answer input).
   */
  private enter(phase: Phase): void {
    if (this.phase !== Phase.Closed) this.phase = phase;
  }

  private close(): void {
    if (this.phase === Phase.Closed) return;
    this.flush();
    this.abandonMessage(new Error("session closed"));
    this.phase = Phase.Closed;
    this.input = EMPTY;
    this.releaseOutputWaiter();
    this.transport.close();
  }
}

/**
 * "BDAT" or "DATA" (any case) when the line (up to `end`) starts with one of them as a word, after white
 * space or CR; "" otherwise.
 */
function dataVerbOf(input: Buffer, start: number, end: number): "BDAT" | "DATA" | "" {
  const isSpace = (byte: number | undefined) =>
    byte === 32 || byte === 9 || byte === 11 || byte === 12 || byte === 13;
  let at = start;
  while (at < end && isSpace(input[at])) at++;
  const word = input.toString("latin1", at, at + 4).toUpperCase();
  const whole = at + 4 >= end || isSpace(input[at + 4]);
  return (word === "BDAT" || word === "DATA") && whole ? word : "";
}

/** The reply that ends a session whose DATA or BDAT line cannot be read. */
function unreadable(verb: "BDAT" | "DATA"): SmtpError {
  return new SmtpError(
    521,
    verb === "BDAT" ? "Syntax: BDAT size [LAST]" : "Syntax error: unreadable DATA command",
    "5.5.4",
  );
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/**
 * What a MAIL or RCPT hook returned: a string replaces the address, but a string that is a whole reply is
 * read as that reply (aiosmtpd's handle_MAIL and handle_RCPT return "250 OK"), never stored as an address:
 * a 4xx or 5xx one refuses, a 2xx one keeps the client's address and gives its text to the 250.
 */
function addressOrReply(returned: unknown, address: string): { address: string; text: string } {
  if (typeof returned !== "string") return { address, text: "Ok" };
  const reply = replyFromHookText(returned);
  if (reply instanceof SmtpError) throw reply;
  return reply === returned ? { address: returned, text: "Ok" } : { address, text: reply };
}
