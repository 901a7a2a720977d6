/**
 * A message received whole into a file (see src/sinks/staging.ts), handed to a store as the AsyncIterable
 * that MessageStore.deliver takes. It can be read as often as needed (each iteration reads the file
 * again), and its size is known before it is read: the sinks' readers (src/sinks/collect.ts) take it in
 * one read, and the spool needs no copy of it to store it after a failed delivery.
 */
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";

export class StagedMessage implements AsyncIterable<Buffer> {
  constructor(
    /** The file that holds the message; it belongs to whoever staged it (deleted after the delivery). */
    readonly path: string,
    readonly size: number,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return createReadStream(this.path, { highWaterMark: 64 * 1024 })[Symbol.asyncIterator]();
  }

  /** The whole message as one Buffer. */
  read(): Promise<Buffer> {
    return readFile(this.path);
  }
}
