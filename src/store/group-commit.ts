import { open } from "node:fs/promises";

/** Flushes a directory's entries (creations, renames, unlinks) to disk. */
export async function fsyncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Group commit: one flush (the fsync of new/) shared by concurrent callers. A rename is durable only once
 * its directory has been fsynced, and with one delivery per SMTP session, one directory fsync per message
 * would queue every session behind the disk.
 *
 * `sync()` resolves after a flush that STARTED after the call, so it covers every change the caller made
 * before calling. While a flush is in flight, callers cannot use it (it may have started before their
 * change); they all share the next one, which starts when the in-flight one ends. So N concurrent callers
 * cost at most two flushes per disk round trip, not N.
 */
export class GroupCommit {
  readonly #flush: () => Promise<void>;
  /** The flush in flight, if any. */
  #running: Promise<void> | undefined;
  /** The flush queued behind #running, not yet started: new callers join it. */
  #next: Promise<void> | undefined;

  /** @param flush makes durable whatever was written before it started; never run twice at once. */
  constructor(flush: () => Promise<void>) {
    this.#flush = flush;
  }

  sync(): Promise<void> {
    if (this.#next) return this.#next;
    if (!this.#running) return this.#start();
    // The in-flight flush's outcome belongs to its own callers; the next one runs either way.
    this.#next = this.#running
      .catch(() => {})
      .then(() => {
        this.#next = undefined;
        return this.#start();
      });
    return this.#next;
  }

  #start(): Promise<void> {
    const running: Promise<void> = this.#flush().finally(() => {
      if (this.#running === running) this.#running = undefined;
    });
    this.#running = running;
    return running;
  }
}
