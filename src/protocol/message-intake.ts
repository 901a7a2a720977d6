/**
 * The one body pump: message octets from the input into the message, for DATA and BDAT alike (each
 * body reader says where it stopped), the data hooks where it stopped, and the end of the message or
 * chunk. It says what the session does next as a BodyProgress.
 */
import { chunkReceivedReply } from "./bdat.js";
import { BodyStop } from "./body-reader.js";
import type { SessionContext } from "./context.js";
import { SmtpError } from "./errors.js";
import type { InputBuffer } from "./input-buffer.js";
import { type Awaitable, thenCall } from "./maybe-async.js";
import type { MessageReceiver } from "./message.js";
import type { BdatMessage, IncomingMessage, SkipChunkPhase } from "./phase.js";
import type { ReplyQueue } from "./reply-queue.js";
import type { SessionConfig, SessionTransport } from "./session-config.js";
import type { MailTransaction } from "./transaction.js";

/** What the session does after a step of the body pump. */
export enum BodyProgress {
  /** Wait for more input. */
  NeedMore = 0,
  /** Go on reading the body. */
  Continue = 1,
  /** The body is over (answered): commands follow. */
  Commands = 2,
  /** A reply that ends the session was queued: close. */
  Close = 3,
}

export class MessageIntake {
  constructor(
    private readonly ctx: SessionContext,
    private readonly config: SessionConfig,
    private readonly transport: Pick<SessionTransport, "dataReceived" | "commandCompleted">,
    private readonly input: InputBuffer,
    private readonly output: ReplyQueue,
    private readonly transaction: MailTransaction,
  ) {}

  /** Reads buffered octets into the message and runs the data hooks where the reader stopped. */
  pump(message: IncomingMessage): Awaitable<BodyProgress> {
    const { receiver } = message;
    // A stream consumer that wants no more bytes: the pump waits for it (and reads no input meanwhile).
    const backpressure = receiver.backpressure;
    if (backpressure) return backpressure.then(() => BodyProgress.Continue);
    const size = this.ctx.message.bytesize;
    const read = this.input.readBody(message.reader);
    if (read > 0) this.transport.dataReceived(read);
    const input = this.input.bytes;
    if (this.ctx.message.bytesize === size) return this.stopped(message, input);
    // The receiving hook sees every chunk of data, before the end of headers or of the message is handled.
    return thenCall(
      () => receiver.receiving(),
      (closing) => (this.closedByHook(closing) ? BodyProgress.Close : this.stopped(message, input)),
    );
  }

  /** Drops buffered octets of a refused chunk, up to its end. */
  skip(phase: SkipChunkPhase): BodyProgress {
    const skipped = this.input.skip(phase.remaining);
    if (skipped > 0) this.transport.dataReceived(skipped);
    phase.remaining -= skipped;
    return phase.remaining > 0 ? BodyProgress.NeedMore : BodyProgress.Commands;
  }

  /** Acts on what stopped the body's reader: the end of the headers, of the body, or of the input. */
  private stopped(message: IncomingMessage, input: Buffer): Awaitable<BodyProgress> {
    switch (message.reader.stop) {
      case BodyStop.HeadersEnd:
        return thenCall(
          () => message.receiver.headersEnded(),
          (closing) => (this.closedByHook(closing) ? BodyProgress.Close : BodyProgress.Continue),
        );
      case BodyStop.End:
        if (message.via === "BDAT") return this.chunkEnded(message);
        if (this.config.crlfMode === "strict" && message.reader.bareLineBreaks > 0) {
          message.receiver.fail(new SmtpError(550, "Error: bare CR or LF in message data", "5.5.2"));
        }
        return thenCall(
          () => this.finish(message.receiver),
          (progress) => {
            this.transport.commandCompleted();
            return progress;
          },
        );
      default:
        // Input that arrived while a hook ran replaced the buffer: go on with it.
        if (this.input.bytes !== input) return BodyProgress.Continue;
        message.receiver.flush(); // the input ran dry: what was read goes to the consumer now
        return BodyProgress.NeedMore;
    }
  }

  /** A BDAT chunk is complete: the message's last, a refused one, or one more. */
  private chunkEnded(message: BdatMessage): Awaitable<BodyProgress> {
    const { receiver } = message;
    this.transport.commandCompleted();
    if (message.last) {
      message.reader.finish();
      return this.finish(receiver);
    }
    if (receiver.error) {
      // RFC 3030 2: after a failed chunk the client sends no more; the transaction is over.
      return thenCall(
        () => receiver.finish(),
        () => {
          this.transaction.reset();
          return this.output.answerError(receiver.error, 451) ? BodyProgress.Close : BodyProgress.Commands;
        },
      );
    }
    receiver.flush();
    this.output.reply(chunkReceivedReply(message.chunkSize));
    return BodyProgress.Commands;
  }

  /** Hands a complete message over; its reply (or, in LMTP, replies) ends the transaction. */
  private finish(receiver: MessageReceiver): Awaitable<BodyProgress> {
    return thenCall(
      () => this.transaction.finish(receiver),
      (result) => {
        const recipients = this.ctx.envelope.to;
        this.transaction.reset();
        return this.output.answerMessage(result, recipients) ? BodyProgress.Close : BodyProgress.Commands;
      },
    );
  }

  /** A data hook that threw 421 gets its reply now, and the session closes. */
  private closedByHook(closing: SmtpError | null): boolean {
    if (!closing) return false;
    this.output.recordError(closing);
    this.output.reply(closing.render());
    return true;
  }
}
