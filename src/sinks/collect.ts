/**
 * Reads a message stream into one Buffer, for sinks that must publish a message whole (an AMQP body, a
 * NATS payload), refusing it as soon as it passes the sink's limit: a message the broker would refuse is
 * never held whole in memory.
 *
 * A Node Readable (what `mailgate serve` and onMessageStream hand over) is read with read() on its
 * 'readable' events rather than through its async iterator, which costs several microseconds of
 * promises, listeners and end-of-stream tracking per message; a WholeMessage (a small message `mailgate
 * serve` buffered) is taken as it is, a StagedMessage (a larger one it staged in a file) in one read of
 * its file; anything else is iterated.
 */
import { Readable } from "node:stream";
import { SmtpError } from "../protocol/errors.js";
import { StagedMessage } from "../store/staged-message.js";
import { WholeMessage } from "../store/whole-message.js";

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
  if (message instanceof WholeMessage) {
    if (message.data.length > limit) throw messageTooBig(limit, what);
    return message.data;
  }
  if (message instanceof StagedMessage) {
    if (message.size > limit) throw messageTooBig(limit, what);
    return message.read();
  }
  if (message instanceof Readable) {
    const head = await readReadable(message, limit);
    if (!head.ended) {
      // As leaving a for-await loop would: the session drains the rest and answers this error.
      message.destroy();
      throw messageTooBig(limit, what);
    }
    return joined(head.chunks, head.size);
  }
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
  return joined(chunks, size);
}

/** The chunks as one Buffer (the one chunk itself when there is only one). */
function joined(chunks: Buffer[], size: number): Buffer {
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
 * readUpTo's answer at once, without a turn of the event loop, for a WholeMessage within `bound`;
 * undefined for anything else.
 */
export function wholeHead(message: AsyncIterable<Buffer>, bound: number): MessageHead | undefined {
  if (!(message instanceof WholeMessage) || message.data.length > bound) return undefined;
  const { data } = message;
  return { chunks: data.length > 0 ? [data] : [], size: data.length, rest: null };
}

/**
 * Reads `message` until it ends or passes `bound` bytes, whichever comes first: a sink that publishes
 * small messages whole and streams large ones elsewhere (the NATS sink's claim check) learns which it
 * has while holding at most `bound` bytes and one chunk.
 */
export async function readUpTo(message: AsyncIterable<Buffer>, bound: number): Promise<MessageHead> {
  const whole = wholeHead(message, bound);
  if (whole) return whole;
  if (message instanceof StagedMessage && message.size <= bound) {
    const data = await message.read();
    return { chunks: data.length > 0 ? [data] : [], size: data.length, rest: null };
  }
  if (message instanceof Readable) {
    const { chunks, size, ended } = await readReadable(message, bound);
    // The iterator takes over where read() stopped: what is still buffered comes first.
    return { chunks, size, rest: ended ? null : (message[Symbol.asyncIterator]() as AsyncIterator<Buffer>) };
  }
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

/**
 * Reads `stream` until it ends or passes `bound` bytes. Rejects with the stream's error (the session
 * aborted the message), or with a premature-close error if it is destroyed before its end, as its async
 * iterator would. Leaves the stream paused, with nothing of it read beyond the chunks returned.
 */
function readReadable(
  stream: Readable,
  bound: number,
): Promise<{ chunks: Buffer[]; size: number; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      stream.off("readable", onReadable);
      stream.off("end", onEnd);
      stream.off("error", onError);
      stream.off("close", onClose);
    };
    const onReadable = () => {
      for (let chunk: Buffer | null = stream.read(); chunk !== null; chunk = stream.read()) {
        chunks.push(chunk);
        size += chunk.length;
        if (size > bound) {
          stop();
          resolve({ chunks, size, ended: false });
          return;
        }
      }
    };
    const onEnd = () => {
      stop();
      resolve({ chunks, size, ended: true });
    };
    const onError = (error: Error) => {
      stop();
      reject(error);
    };
    const onClose = () => {
      stop();
      reject(stream.errored ?? prematureClose());
    };
    if (stream.errored) return reject(stream.errored);
    if (stream.destroyed) return reject(prematureClose());
    stream.on("readable", onReadable);
    stream.on("end", onEnd);
    stream.on("error", onError);
    stream.on("close", onClose);
  });
}

/** What a stream's async iterator throws when the stream is destroyed before its end. */
function prematureClose(): Error {
  return Object.assign(new Error("Premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
}
