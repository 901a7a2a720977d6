/**
 * The NATS sink's claim check, its upload side: a message too large for one NATS message is streamed,
 * chunk by chunk as the SMTP client sends it, into a JetStream Object Store bucket under its id.
 */
import type { ObjectStore } from "@nats-io/obj";
import { SmtpError } from "../protocol/errors.js";
import { type MessageHead, messageTooBig } from "./collect.js";
import type { ClaimCheck } from "./nats-headers.js";

/** What the upload needs of its sink. */
export interface UploadBounds {
  maxMessageSize: number;
  publishTimeout: number;
  /** Throws SinkUnavailable when the connection went: the upload ends now, not after a chunk's timeout. */
  ensureUsable(): void;
  /** The sink's error for a failure of the client (a refusal, or SinkUnavailable). */
  classify(error: unknown, what: string): Error;
}

/** Streams the message (its head already read) into the bucket under its id. */
export async function putObject(
  objects: ObjectStore,
  bucket: string,
  id: string,
  head: MessageHead,
  bounds: UploadBounds,
): Promise<ClaimCheck> {
  const rest = head.rest as AsyncIterator<Buffer>;
  const queued = [...head.chunks];
  let size = head.size;
  const source = new ReadableStream<Uint8Array>(
    {
      pull: async (controller) => {
        const chunk = queued.shift();
        if (chunk) {
          controller.enqueue(chunk);
          return;
        }
        bounds.ensureUsable();
        const next = await rest.next();
        if (next.done) {
          controller.close();
          return;
        }
        size += next.value.length;
        if (size > bounds.maxMessageSize)
          throw messageTooBig(bounds.maxMessageSize, "the sink's maximum message size");
        controller.enqueue(next.value);
      },
      cancel: async () => {
        await rest.return?.();
      },
    },
    { highWaterMark: 0 },
  );
  try {
    const info = await objects.put({ name: id }, source, { timeout: bounds.publishTimeout });
    return { bucket, name: id, size: info.size };
  } catch (error) {
    await rest.return?.();
    if (error instanceof SmtpError) throw error; // 552, SinkUnavailable, or the session's own abort
    throw bounds.classify(error, `object ${bucket}/${id}`);
  }
}
