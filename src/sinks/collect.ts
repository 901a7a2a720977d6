/**
 * Reads a message stream into one Buffer, for sinks that must publish a message whole (an AMQP body, a
 * NATS payload), refusing it as soon as it passes the sink's limit: a message the broker would refuse is
 * never held whole in memory.
 */
import { SmtpError } from "../protocol/errors.js";

/**
 * The whole of `message` as one Buffer, or an SmtpError 552 5.3.4 as soon as it passes `limit` bytes
 * (`what` names the limit in the reply). A stream that errors (the session aborted the message) rejects
 * with its error.
 */
export async function readWholeMessage(
  message: AsyncIterable<Buffer>,
  limit: number,
  what = "the sink's maximum message size",
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of message) {
    size += chunk.length;
    if (size > limit) {
      // Leaving the loop releases the stream; the session drains the rest and answers this error.
      throw messageTooBig(limit, what);
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
}

/** SmtpError 552 5.3.4: the message passed `limit` bytes, the limit that `what` names. */
export function messageTooBig(limit: number, what: string): SmtpError {
  return new SmtpError(552, `Error: message exceeds ${what} (${limit} bytes)`, "5.3.4");
}

/** The start of a message, read up to a bound, and what is left of it. */
export interface MessageHead {
  chunks: Buffer[];
  size: number;
  /** The rest of the message (its first chunk is already read, in `chunks`), or null when it ended. */
  rest: AsyncIterator<Buffer> | null;
}

/**
 * Reads `message` until it ends or passes `bound` bytes, whichever comes first: a sink that publishes
 * small messages whole and streams large ones elsewhere (the NATS sink's claim check) learns which it
 * has while holding at most `bound` bytes and one chunk.
 */
export async function readUpTo(message: AsyncIterable<Buffer>, bound: number): Promise<MessageHead> {
  const iterator = message[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let size = 0;
  for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
    chunks.push(next.value);
    size += next.value.length;
    if (size > bound) return { chunks, size, rest: iterator };
  }
  return { chunks, size, rest: null };
}
