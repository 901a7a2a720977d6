/**
 * Stores whole messages into a Maildir on a worker thread (batch-writer-thread.ts), in batches: the
 * messages that arrive while one batch is being stored form the next, and share its flushes (one syncfs
 * for the files' bytes, one fsync of new/ for the renames). For the SMTP
 * thread a message then costs one postMessage and one answer, instead of five or six trips through
 * libuv's thread pool (open, write, fsync, close, rename, each woken up and resolved on the event loop).
 *
 * Each store() resolves only once its file is durable in new/ (see the thread's header for the order of
 * the steps), or rejects with the error that stopped it, having left nothing behind. If the thread dies,
 * the deliveries it had are rejected (their clients will send again) and the next store() starts another.
 */
import { Worker } from "node:worker_threads";

/** What the thread is started with. */
export interface WriterSetup {
  /** The Maildir (with tmp/ and new/), on a file system that syncfs can flush (see syncfs.ts). */
  directory: string;
}

/** One message to store: its bytes go to `tmp`, which is then renamed to `final`. */
export interface StoreJob {
  id: number;
  tmp: string;
  final: string;
  data: Uint8Array;
}

/** How a job ended: without `error` it is durable in new/. */
export interface BatchOutcome {
  id: number;
  error?: { message: string; code?: string };
}

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

export class BatchWriter {
  readonly #setup: WriterSetup;
  #worker: Worker | undefined;
  #lastId = 0;
  readonly #waiting = new Map<number, Waiter>();

  constructor(setup: WriterSetup) {
    this.#setup = setup;
  }

  /**
   * Stores `data` as `final` (through `tmp`). `data` must own its whole ArrayBuffer, which is moved to the
   * thread (not copied): the caller must not use it afterwards.
   */
  store(tmp: string, final: string, data: Buffer): Promise<void> {
    if (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength) {
      // Moving a slice of Node's shared pool would take the other Buffers in it away too.
      return Promise.reject(new TypeError("BatchWriter.store needs a Buffer that owns its whole memory."));
    }
    const worker = this.#worker ?? this.#start();
    this.#lastId += 1;
    const id = this.#lastId;
    // Referenced only while it has work: an idle writer must not keep the process alive.
    if (this.#waiting.size === 0) worker.ref();
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      const job: StoreJob = { id, tmp, final, data };
      worker.postMessage(job, [data.buffer as ArrayBuffer]);
    });
  }

  /** Stops the thread; deliveries must be over (any still waiting are rejected). */
  async close(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    this.#lost(worker, new Error("The Maildir store was closed before this message was stored."));
    await worker.terminate();
  }

  #start(): Worker {
    const worker = new Worker(new URL("./batch-writer-thread.js", import.meta.url), {
      workerData: this.#setup,
    });
    worker.on("message", (outcomes: BatchOutcome[]) => {
      for (const { id, error } of outcomes) {
        const waiter = this.#waiting.get(id);
        this.#waiting.delete(id);
        if (!error) waiter?.resolve();
        else waiter?.reject(Object.assign(new Error(error.message), error.code ? { code: error.code } : {}));
      }
      if (this.#waiting.size === 0) worker.unref();
    });
    worker.on("error", (error) => this.#lost(worker, error));
    worker.on("exit", (code) => this.#lost(worker, new Error(`The Maildir writer thread exited (${code}).`)));
    // Idle until store() refs it; after the listeners, since adding a 'message' listener refs it again.
    worker.unref();
    this.#worker = worker;
    return worker;
  }

  /** `worker` is gone: what it was storing fails, and the next store() starts a new one. */
  #lost(worker: Worker, error: Error): void {
    if (this.#worker !== worker) return;
    this.#worker = undefined;
    for (const waiter of this.#waiting.values()) waiter.reject(error);
    this.#waiting.clear();
  }
}
