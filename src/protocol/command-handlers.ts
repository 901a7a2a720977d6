/**
 * What each command does once its line is read (RFC 5321 4.1.1, RFC 3030, RFC 4954, XCLIENT/XFORWARD),
 * apart from STARTTLS, whose handshake the session waits for itself. A handler replies through the reply
 * queue and returns what the session does next: read another phase, close, or go on reading commands.
 */
import { AuthExchange, type AuthStep } from "./auth-exchange.js";
import { parseBdat } from "./bdat.js";
import { capabilities } from "./capabilities.js";
import { type CommandLine, parseEsmtpParams } from "./commands.js";
import type { SessionContext } from "./context.js";
import { SmtpError } from "./errors.js";
import type { SessionHooks } from "./hooks.js";
import { expn, greetingArgument, HELP_REPLY, vrfy } from "./mail-commands.js";
import { type Awaitable, thenCall } from "./maybe-async.js";
import { COMMAND, type Phase } from "./phase.js";
import { formatReply } from "./replies.js";
import type { ReplyQueue } from "./reply-queue.js";
import type { SessionConfig, SessionTransport } from "./session-config.js";
import { type MailTransaction, TxState } from "./transaction.js";
import { HTTP_VERBS, NOT_IMPLEMENTED } from "./verbs.js";
import { applyXclient, parseXforward } from "./xclient.js";

/** DATA's 354, rendered once. */
const START_MAIL_INPUT = formatReply(354, undefined, 'Enter message, ending with "." on a line by itself');

/** What the session does after a command: read another phase, close, or (undefined) read commands. */
export type NextStep = Phase | "close" | undefined | void;

export class CommandHandlers {
  constructor(
    private readonly ctx: SessionContext,
    private readonly config: SessionConfig,
    private readonly hooks: SessionHooks,
    private readonly transport: Pick<SessionTransport, "startTls" | "xclientTrusted">,
    private readonly output: ReplyQueue,
    private readonly transaction: MailTransaction,
  ) {}

  /** The AUTH exchange and its failure count: made on the first AUTH. */
  private authExchange: AuthExchange | null = null;

  /** Runs the command; a promise only if a hook made it wait. Throws (or rejects) the error that refuses it. */
  run(line: CommandLine, moreInput: boolean): Awaitable<NextStep> {
    const { ctx, config, hooks, output, transaction } = this;
    switch (line.verb) {
      case "EHLO":
      case "HELO":
      case "LHLO": {
        const heloData = greetingArgument(line, config);
        return thenCall(
          () => hooks.onHelo(ctx, heloData),
          () => this.greeted(line.verb, heloData),
        );
      }
      case "MAIL":
        return thenCall(
          () => transaction.mail(line),
          (reply) => output.reply(reply),
        );
      case "RCPT":
        return thenCall(
          () => transaction.rcpt(line),
          (reply) => output.reply(reply),
        );
      case "DATA":
        return this.data(line);
      case "BDAT":
        return this.bdat(line);
      case "XCLIENT":
        // A trusted front end names the real client; the session starts over with a 220.
        this.requireTrustedOutsideTransaction("XCLIENT");
        applyXclient(parseEsmtpParams(` ${line.args}`), ctx.server);
        transaction.restart();
        return output.reply(formatReply(220, undefined, ctx.server.localResponse));
      case "XFORWARD":
        // The original client's attributes, kept for the next transaction's envelope.
        this.requireTrustedOutsideTransaction("XFORWARD");
        transaction.forwarded = parseXforward(parseEsmtpParams(` ${line.args}`), transaction.forwarded ?? {});
        return output.reply(formatReply(250, "2.0.0", "Ok"));
      case "AUTH":
        return this.auth(line, moreInput);
      case "RSET":
        requireNoArgs(line);
        transaction.requireTls();
        transaction.reset();
        return output.reply(formatReply(250, "2.0.0", "Ok"));
      case "NOOP":
        return output.reply(formatReply(250, "2.0.0", "Ok"));
      case "QUIT":
        requireNoArgs(line);
        output.reply(formatReply(221, "2.0.0", `${config.hostname} Service closing transmission channel`));
        return "close";
      case "HELP":
        return output.reply(HELP_REPLY);
      case "VRFY":
        return vrfy(line, ctx, hooks).then((reply) => output.reply(reply));
      case "EXPN":
        return expn(line, ctx, hooks).then((reply) => output.reply(reply));
      default:
        return this.other(line);
    }
  }

  /** The HELO/EHLO/LHLO hook accepted `heloData`: the session starts over and the greeting is answered. */
  private greeted(verb: string, heloData: string): void {
    // RFC 5321 4.1.4: a later EHLO/HELO resets the session like RSET.
    this.transaction.greeted();
    const { server } = this.ctx;
    server.helo = heloData;
    server.heloCommand = verb;
    if (verb === "HELO") {
      this.output.reply(formatReply(250, undefined, server.heloResponse));
      return;
    }
    const lines = capabilities(this.config, {
      heloResponse: server.heloResponse,
      encrypted: server.encrypted !== null,
      canStartTls: this.transport.startTls !== undefined,
      xclientTrusted: this.transport.xclientTrusted === true,
    });
    this.output.reply(formatReply(250, undefined, lines));
  }

  private async other(line: CommandLine): Promise<NextStep> {
    if (HTTP_VERBS.has(line.verb)) {
      this.hooks.log(this.ctx, "warn", `HTTP request on the SMTP port from ${this.ctx.server.remoteIp}`);
      this.output.reply(formatReply(421, "4.7.0", `${this.config.hostname} Error: this is an SMTP server`));
      return "close";
    }
    if (NOT_IMPLEMENTED.has(line.verb)) throw SmtpError.code(502);
    await this.hooks.onProcessLineUnknown(this.ctx, line.text);
    throw SmtpError.code(500);
  }

  /** DATA: the data-start hook, then the 354 and the message's octets. */
  private data(line: CommandLine): Awaitable<NextStep> {
    requireNoArgs(line);
    const message = this.transaction.startData();
    return thenCall(
      () => message.receiver.begin(),
      (): NextStep => {
        this.output.reply(START_MAIL_INPUT);
        return { kind: "body", message };
      },
      (error) => {
        // Refused before the 354: the client keeps its transaction and may RSET or try again.
        this.transaction.resetMessage();
        throw error;
      },
    );
  }

  /**
   * BDAT size [LAST] (RFC 3030 2): the chunk's octets follow the command whatever the answer, so a refused
   * chunk is still read (and dropped) to its end; never are its bytes taken for commands.
   */
  private bdat(line: CommandLine): Awaitable<NextStep> {
    const { size, last } = parseBdat(line);
    const refuse = (error: unknown): NextStep =>
      this.output.answerError(error, 451) ? "close" : { kind: "skip-chunk", remaining: size };
    let started: ReturnType<MailTransaction["startBdat"]>;
    try {
      started = this.transaction.startBdat();
    } catch (error) {
      return refuse(error);
    }
    const { message } = started;
    const startChunk = (): NextStep => {
      message.reader.startChunk(size);
      message.chunkSize = size;
      message.last = last;
      return { kind: "body", message };
    };
    if (!started.isNew) return startChunk();
    return thenCall(
      () => message.receiver.begin(),
      startChunk,
      (error) => {
        this.transaction.resetMessage();
        return refuse(error);
      },
    );
  }

  /**
   * RFC 4954 4: AUTH after EHLO, outside a mail transaction, and once per session; what follows the
   * command is the AuthExchange's to say, step by step.
   */
  private auth(line: CommandLine, moreInput: boolean): Promise<NextStep> {
    const { ctx, config, hooks, transaction, output } = this;
    if (config.auth.mode === "forbidden") throw SmtpError.code(502);
    if (transaction.state === TxState.NeedHelo) throw new SmtpError(503, "Error: send EHLO first", "5.5.1");
    if (transaction.state !== TxState.Ready) {
      throw new SmtpError(503, "Error: AUTH is not allowed in a transaction", "5.5.1");
    }
    if (ctx.server.authenticated) throw new SmtpError(503, "Error: already authenticated", "5.5.1");
    transaction.requireTls();
    this.authExchange ??= new AuthExchange({ ctx, config, hooks, isOpen: () => output.isOpen });
    const exchange = this.authExchange;
    return exchange.start(line.args, moreInput).then((step) => this.authStep(exchange, step));
  }

  /** Carries out what the AUTH exchange says; the next step is reading its response lines, or commands. */
  authStep(exchange: AuthExchange, step: AuthStep): NextStep {
    const { output } = this;
    switch (step.kind) {
      case "challenge":
        output.reply(step.reply);
        return { kind: "auth", exchange };
      case "authenticated":
        output.reply(step.reply);
        return COMMAND;
      case "refused":
        output.reply(step.reply);
        return "close";
      case "failed": {
        if (output.answerError(step.error)) return "close";
        const closing = output.isOpen ? exchange.afterFailure(step) : null;
        if (!closing) return COMMAND;
        output.reply(closing);
        return "close";
      }
      default:
        return COMMAND;
    }
  }

  /** XCLIENT and XFORWARD: only from a trusted front end, and outside a transaction. */
  private requireTrustedOutsideTransaction(verb: string): void {
    if (!this.transport.xclientTrusted)
      throw new SmtpError(550, "Error: insufficient authorization", "5.7.0");
    if (this.transaction.underWay) {
      throw new SmtpError(503, `Error: ${verb} is not allowed in a transaction`, "5.5.1");
    }
  }
}

export function requireNoArgs(line: CommandLine): void {
  if (line.args !== "") throw new SmtpError(501, `Syntax: ${line.verb} takes no arguments`, "5.5.4");
}
