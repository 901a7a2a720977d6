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
      throw new SmtpError(552, `Error: message exceeds ${what} (${limit} bytes)`, "5.3.4");
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
}
