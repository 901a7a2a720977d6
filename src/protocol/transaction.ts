/**
 * The mail transaction of a session (RFC 5321 3.3): where it stands (greeted, MAIL, RCPT), what the
 * commands that move it require (HELO first, TLS and AUTH when the server demands them, recipients before
 * the data), its envelope and the message under way, and what resets it.
 */
import { ChunkReader } from "./chunking.js";
import type { CommandLine } from "./commands.js";
import { emptyEnvelope, type Forwarded, type SessionContext, writeOutsideData } from "./context.js";
import { DataDecoder } from "./data.js";
import { SmtpError } from "./errors.js";
import type { SessionHooks } from "./hooks.js";
import { mailFrom, rcptTo } from "./mail-commands.js";
import { type Awaitable, thenCall } from "./maybe-async.js";
import { MessageReceiver } from "./message.js";
import type { MessageResult } from "./message-outcome.js";
import type { BdatMessage, DataMessage, IncomingMessage } from "./phase.js";
import type { SessionConfig } from "./session-config.js";

export enum TxState {
  NeedHelo = 0,
  Ready = 1,
  Mail = 2,
  Rcpt = 3,
}

const EMPTY = Buffer.alloc(0);

export class MailTransaction {
  state = TxState.NeedHelo;
  /** The message of the transaction, from DATA or the first BDAT until it is answered or reset. */
  message: IncomingMessage | null = null;
  /** Between the end of a message and its reply: a shutdown waits for the reply. */
  committing = false;
  /** XFORWARD attributes waiting for the next MAIL. */
  forwarded: Forwarded | null = null;

  constructor(
    private readonly ctx: SessionContext,
    private readonly config: SessionConfig,
    private readonly hooks: SessionHooks,
  ) {}

  /** MAIL or RCPT was accepted, or a message is being received or handed over. */
  get underWay(): boolean {
    return this.state === TxState.Mail || this.state === TxState.Rcpt || this.committing;
  }

  /** MAIL FROM; its 250. */
  mail(line: CommandLine): Awaitable<string> {
    if (this.state === TxState.NeedHelo) throw new SmtpError(503, "Error: send HELO/EHLO first", "5.5.1");
    if (this.state !== TxState.Ready) throw new SmtpError(503, "Error: nested MAIL command", "5.5.1");
    this.requireSecurity();
    return thenCall(
      () => mailFrom(line, this.ctx, this.config, this.hooks, this.forwarded),
      (reply) => {
        this.state = TxState.Mail;
        return reply;
      },
    );
  }

  /** RCPT TO: after MAIL, with room for one more recipient, before the message's first BDAT chunk; its 250. */
  rcpt(line: CommandLine): Awaitable<string> {
    if (this.state !== TxState.Mail && this.state !== TxState.Rcpt) {
      throw new SmtpError(503, "Error: need MAIL command", "5.5.1");
    }
    this.requireSecurity();
    if (this.ctx.envelope.to.length >= this.config.maxRecipients) {
      throw new SmtpError(452, "Error: too many recipients", "4.5.3");
    }
    if (this.message?.via === "BDAT") throw new SmtpError(503, "Error: RCPT after BDAT", "5.5.1");
    return thenCall(
      () => rcptTo(line, this.ctx, this.config, this.hooks),
      (reply) => {
        this.state = TxState.Rcpt;
        return reply;
      },
    );
  }

  /** DATA: a message read up to its final dot (its data-start hook is the caller's to run). */
  startData(): DataMessage {
    this.requireRecipients();
    if (this.message?.via === "BDAT") {
      throw new SmtpError(503, "Error: DATA after BDAT in one transaction", "5.5.1");
    }
    if (this.ctx.envelope.encodingBody === "binarymime") {
      // RFC 3030 3: BINARYMIME content cannot be sent with DATA.
      throw new SmtpError(503, "Error: BODY=BINARYMIME requires BDAT", "5.5.1");
    }
    const receiver = this.newReceiver();
    const decoder = new DataDecoder(this.config.crlfMode, (bytes) => receiver.write(bytes));
    const message: DataMessage = { via: "DATA", receiver, reader: decoder };
    this.message = message;
    return message;
  }

  /** BDAT: the message its chunks make, new (its data-start hook still to run) or already under way. */
  startBdat(): { message: BdatMessage; isNew: boolean } {
    if (!this.config.chunking) throw SmtpError.code(502);
    this.requireRecipients();
    const current = this.message;
    if (current?.via === "BDAT") return { message: current, isNew: false };
    const receiver = this.newReceiver();
    const reader = new ChunkReader((bytes) => receiver.write(bytes));
    const message: BdatMessage = { via: "BDAT", receiver, reader, chunkSize: 0, last: false };
    this.message = message;
    return { message, isNew: true };
  }

  /** The message is complete: the hooks' verdict (a shutdown waits for it). */
  finish(receiver: MessageReceiver): Awaitable<MessageResult> {
    this.committing = true;
    return thenCall(
      () => receiver.finish(),
      (result) => {
        this.committing = false;
        // The message is over: the reset that follows must not abandon it (nor build an error to say so).
        this.message = null;
        return result;
      },
      (error) => {
        this.committing = false;
        throw error;
      },
    );
  }

  /** The client greeted (or greeted again): a fresh transaction. */
  greeted(): void {
    this.reset();
    this.state = TxState.Ready;
  }

  /** STARTTLS or XCLIENT: the session starts over, and the client must greet again. */
  restart(): void {
    this.reset();
    this.state = TxState.NeedHelo;
  }

  /** Forgets the transaction: envelope and message. */
  reset(): void {
    this.ctx.envelope = emptyEnvelope();
    this.forwarded = null; // XFORWARD describes one transaction
    this.resetMessage();
    if (this.state !== TxState.NeedHelo) this.state = TxState.Ready;
  }

  /** Forgets the message under way; the envelope stays. */
  resetMessage(): void {
    // RSET or EHLO between BDAT chunks: the consumer learns that the message will not come. The error is
    // built only then: an Error's stack trace costs more than the rest of a reset.
    if (this.message) {
      this.abandon(new SmtpError(451, "Transaction reset before the message was complete", "4.3.0"));
      this.message = null;
    }
    const message = this.ctx.message;
    message.write = writeOutsideData;
    message.received = null;
    message.delivered = null;
    message.bytesize = 0;
    message.headers = false;
    message.data = EMPTY;
  }

  /** The session ends before the message does. */
  abandon(reason: unknown): void {
    this.message?.receiver.abandon(reason);
  }

  /** tlsMode required: nothing but EHLO, STARTTLS, NOOP, HELP and QUIT before TLS. */
  requireTls(): void {
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
    if (this.state === TxState.Mail) throw new SmtpError(503, "Error: no valid recipients", "5.5.1");
    if (this.state !== TxState.Rcpt) throw new SmtpError(503, "Error: need RCPT command", "5.5.1");
    this.requireSecurity();
  }

  private newReceiver(): MessageReceiver {
    const { config } = this;
    const receiver = new MessageReceiver(this.ctx, this.hooks, {
      maxMessageSize: config.maxMessageSize,
      streamHighWaterMark: config.messageChunkSize,
      bufferUpTo: config.bufferMessagesUpTo ?? 0,
    });
    this.ctx.message.write = (bytes) => receiver.insert(bytes);
    return receiver;
  }
}
