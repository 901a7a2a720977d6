/**
 * BDAT commands and the chunks that follow them (CHUNKING, RFC 3030): the command's checks, each chunk's
 * octets read into the message (or dropped when its command was refused), and the reply at each chunk's
 * end. Counting the octets and finding the end of the headers is ChunkReader's (chunking.ts).
 */
import { ChunkReader, ChunkStop } from "./chunking.js";
import type { CommandLine } from "./commands.js";
import { SmtpError } from "./errors.js";
import type { MessageReceiver } from "./message.js";
import { formatReply } from "./replies.js";
import type { SessionView } from "./session.js";

/** What BDAT uses of its session. */
export type BdatSession = Pick<
  SessionView,
  | "config"
  | "ctx"
  | "transport"
  | "input"
  | "inputPos"
  | "isClosed"
  | "receiver"
  | "reply"
  | "answerError"
  | "closedByHook"
  | "requireRecipients"
  | "newReceiver"
  | "resetMessage"
  | "resetTransaction"
  | "finishMessage"
  | "consumeData"
  | "expectCommands"
  | "expectChunk"
  | "expectDiscardedChunk"
>;

export class BdatReader {
  /** The reader of the message's chunks; null until the message's first BDAT is accepted. */
  private chunks: ChunkReader | null = null;
  /** The size the current chunk's BDAT announced, for its 250. */
  private chunkSize = 0;
  /** The current chunk is the message's last (BDAT size LAST). */
  private lastChunk = false;
  /** Octets of a refused chunk still to drop. */
  private skipRemaining = 0;

  constructor(private readonly session: BdatSession) {}

  /**
   * A message is coming in BDAT chunks: DATA is refused until it ends (RFC 3030 2: DATA and BDAT are not
   * mixed in one transaction), and so is RCPT, whose recipients the message would miss.
   */
  get inMessage(): boolean {
    return this.chunks !== null;
  }

  /** The message is over (complete, refused or reset): the next BDAT starts another. */
  endMessage(): void {
    this.chunks = null;
  }

  /**
   * BDAT size [LAST] (RFC 3030 2): the chunk's octets follow the command whatever the answer, so a refused
   * chunk is still read (and dropped) to its end; never are its bytes taken for commands.
   */
  async handle(line: CommandLine): Promise<void> {
    const { session } = this;
    // Exactly: the command line's trailing white space is gone already, and nothing else may differ from
    // what any front end would frame (no trimEnd(), which also drops NBSP or U+2028).
    const match = /^([0-9]{1,15})(?: +(LAST))?$/i.exec(line.args);
    // Without a size, where this chunk ends is unknown: a front end that framed it otherwise now disagrees
    // with us about what is a command (a smuggling desync). The session ends, as in Postfix.
    if (!match) throw new SmtpError(521, "Syntax: BDAT size [LAST]", "5.5.4");
    const size = Number(match[1]);
    let reader = this.chunks;
    try {
      if (!session.config.chunking) throw SmtpError.code(502);
      session.requireRecipients();
      if (!reader) {
        const receiver = session.newReceiver();
        try {
          await receiver.begin();
        } catch (error) {
          session.resetMessage();
          throw error;
        }
        reader = new ChunkReader((bytes) => receiver.write(bytes));
        this.chunks = reader;
      }
    } catch (error) {
      this.skipRemaining = size;
      session.expectDiscardedChunk();
      throw error;
    }
    reader.startChunk(size);
    this.chunkSize = size;
    this.lastChunk = match[2] !== undefined;
    session.expectChunk();
  }

  /** Reads buffered chunk octets into the message; false when more input is needed. */
  async pumpChunk(): Promise<boolean> {
    const { session } = this;
    const receiver = session.receiver as MessageReceiver;
    if (receiver.blocked) return false;
    const reader = this.chunks as ChunkReader;
    const start = session.inputPos;
    const size = session.ctx.message.bytesize;
    session.consumeData(reader.read(session.input, start));
    const input = session.input;
    if (session.ctx.message.bytesize > size && session.closedByHook(await receiver.receiving())) return false;

    switch (reader.stop) {
      case ChunkStop.HeadersEnd:
        return !session.closedByHook(await receiver.headersEnded());
      case ChunkStop.ChunkEnd:
        session.expectCommands();
        session.transport.commandCompleted();
        if (this.lastChunk) {
          reader.finish();
          await session.finishMessage(receiver);
        } else if (receiver.error) {
          // RFC 3030 2: after a failed chunk the client sends no more; the transaction is over.
          const { error } = await receiver.finish();
          session.resetTransaction();
          session.answerError(error, 451);
        } else {
          session.reply(formatReply(250, "2.0.0", `Ok: ${this.chunkSize} octets received`));
        }
        return !session.isClosed;
      default:
        // Input that arrived while a hook ran replaced the buffer: go on with it.
        return session.input !== input;
    }
  }

  /** Drops buffered octets of a refused chunk; true once the chunk is over. */
  skipChunk(): boolean {
    const { session } = this;
    const skipped = Math.min(session.input.length - session.inputPos, this.skipRemaining);
    session.consumeData(session.inputPos + skipped);
    this.skipRemaining -= skipped;
    if (this.skipRemaining > 0) return false;
    session.expectCommands();
    return true;
  }
}
