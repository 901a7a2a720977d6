/**
 * A message stream can be read once, and a sink may fail after reading some or all of it (a lost
 * connection, no confirm in time). MessageTee stands between the message and the sink and keeps what the
 * sink read, so that the spool can still store the message from its first byte: the first `memoryLimit`
 * bytes as the chunks themselves (no copy; a 2 KB message costs nothing more), anything beyond in a file
 * written as the chunks pass and never flushed (on success it is removed; on failure the spool copies it).
 *
 * The sink's early exit (return(), a for-await loop left by an error) does not release the message: the
 * spool decides afterwards whether it reads the rest (replay) or releases it (dispose).
 */
import { type FileHandle, open, rm } from "node:fs/promises";
import { writeFully } from "../store/write-fully.js";
import { readFrom } from "./spool-file.js";

export class MessageTee implements AsyncIterable<Buffer> {
  readonly #source: AsyncIterator<Buffer>;
  readonly #memoryLimit: number;
  /** Where the spill file goes, named only when it is needed. */
  readonly #spillPath: () => string;
  #spillName: string | undefined;
  readonly #head: Buffer[] = [];
  #headBytes = 0;
  #spill: FileHandle | undefined;
  #spillBytes = 0;
  /** The source ended or failed: nothing more to read from it. */
  #ended = false;
  #sourceError: unknown;
  /** The sink's read in progress: a sink that gave up may leave one behind. */
  #reading: Promise<IteratorResult<Buffer>> | undefined;
  /** The spool took over: whatever the sink still asks for is the end. */
  #detached = false;
  #iterated = false;

  /**
   * @param memoryLimit bytes kept in memory; the rest goes to a file at `spillPath()` (created only if needed)
   */
  constructor(source: AsyncIterable<Buffer>, memoryLimit: number, spillPath: () => string) {
    this.#source = source[Symbol.asyncIterator]();
    this.#memoryLimit = memoryLimit;
    this.#spillPath = spillPath;
  }

  /** The error the message itself failed with (the session aborted it), if it did. */
  get sourceError(): unknown {
    return this.#sourceError;
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (this.#iterated) throw new Error("A message stream can be read once.");
    this.#iterated = true;
    return {
      next: () => {
        this.#reading = this.#next();
        return this.#reading;
      },
      return: async () => ({ done: true, value: undefined }),
    };
  }

  async #next(): Promise<IteratorResult<Buffer>> {
    if (this.#ended || this.#detached) return { done: true, value: undefined };
    const next = await this.#pull();
    if (!next.done) await this.#keep(next.value);
    return next;
  }

  async #pull(): Promise<IteratorResult<Buffer>> {
    try {
      const next = await this.#source.next();
      if (next.done) this.#ended = true;
      return next;
    } catch (error) {
      this.#ended = true;
      this.#sourceError = error ?? new Error("the message stream failed");
      throw error;
    }
  }

  async #keep(chunk: Buffer): Promise<void> {
    if (!this.#spill && this.#headBytes + chunk.length <= this.#memoryLimit) {
      this.#head.push(chunk);
      this.#headBytes += chunk.length;
      return;
    }
    // "wx+" (O_EXCL, read and write): never another's file; read back by replay().
    if (!this.#spill) {
      this.#spillName = this.#spillPath();
      this.#spill = await open(this.#spillName, "wx+", 0o600);
    }
    await writeFully(this.#spill, chunk);
    this.#spillBytes += chunk.length;
  }

  /**
   * The whole message from its first byte: what the sink read, then what the source still holds. The
   * sink must be done with it (its deliver() settled); a read it left behind is waited for first.
   */
  async *replay(): AsyncGenerator<Buffer> {
    await this.#detach();
    if (this.#sourceError) throw this.#sourceError;
    yield* this.#head;
    if (this.#spill) yield* readFrom(this.#spill, 0, this.#spillBytes);
    while (!this.#ended) {
      const next = await this.#pull();
      if (!next.done) yield next.value;
    }
  }

  /** From now on the sink reads nothing more; its read in progress (its error is the sink's) ends first. */
  async #detach(): Promise<void> {
    this.#detached = true;
    await this.#reading?.catch(() => {});
  }

  /** Releases the message if it was not read to its end, and removes the spill file. */
  async dispose(): Promise<void> {
    await this.#detach();
    if (!this.#ended) {
      this.#ended = true;
      // Not awaited: the session drains the rest of the message itself.
      this.#source.return?.()?.catch(() => {});
    }
    const [spill, name] = [this.#spill, this.#spillName];
    this.#spill = undefined;
    if (spill && name) {
      await spill.close().catch(() => {});
      await rm(name, { force: true }).catch(() => {});
    }
  }
}
