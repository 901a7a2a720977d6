/**
 * The worker thread of BatchWriter (batch-writer.ts). It stores whole messages into one Maildir, a batch
 * at a time: every message that arrived while the previous batch was being stored. Its calls block, but
 * only this thread, and each costs one syscall instead of a trip through libuv's thread pool and back
 * to the event loop, which is what made storing small messages expensive for the SMTP thread.
 *
 * A batch: create each file in tmp/ ("wx": never one another delivery owns) and write it; make the
 * bytes durable with one syncfs; rename each into new/; fsync new/ once; check that new/ is still the
 * directory the Maildir's path leads to. Only then are the batch's deliveries answered, each with its
 * own outcome. A Maildir replaced while idle is followed (see held-directory.ts); one replaced during a
 * batch fails the batch. A message that failed
 * leaves nothing behind: its file is removed from tmp/, or from new/ when the fsync of new/ failed
 * (the client will send it again, so this copy must not be delivered too).
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import type { BatchOutcome, StoreJob, WriterSetup } from "./batch-writer.js";
import { HeldDirectory, maildirReplaced } from "./held-directory.js";
import { type BlockingFileSystemSync, loadBlockingSyncfs } from "./syncfs.js";

const setup = workerData as WriterSetup;
const port = parentPort;
if (!port) throw new Error("batch-writer-thread.js runs as a worker thread of BatchWriter.");

const loaded = await loadBlockingSyncfs();
if (typeof loaded === "string") throw new Error(`Cannot flush the Maildir with syncfs: ${loaded}.`);
const syncfs: BlockingFileSystemSync = loaded;
// Held open: syncfs reports write errors through a descriptor opened before them. new/ serves both
// flushes: a rename cannot cross file systems, so the files renamed into it are on the one it is on.
const newDirectory = new HeldDirectory(join(setup.directory, "new"));

let queue: StoreJob[] = [];
let scheduled = false;

port.on("message", (job: StoreJob) => {
  queue.push(job);
  if (scheduled) return;
  scheduled = true;
  // After the messages already waiting in the port have been queued: they join this batch.
  setImmediate(storeBatch);
});

function storeBatch(): void {
  scheduled = false;
  const batch = queue;
  queue = [];
  const outcomes: BatchOutcome[] = [];
  /** Answers `job` with `error`, removing the file it left at `remove`, if any. */
  const failed = (job: StoreJob, error: unknown, remove?: string) => {
    if (remove !== undefined) removeQuietly(remove);
    outcomes.push({ id: job.id, error: describe(error) });
  };
  let toWrite = batch;
  try {
    // Before the writes, so that the descriptor the syncfs goes through was opened before them.
    newDirectory.follow();
  } catch (error) {
    for (const job of batch) failed(job, error);
    toWrite = [];
  }
  let written: StoreJob[] = [];
  for (const job of toWrite) {
    try {
      writeMessageFile(job);
      written.push(job);
    } catch (error) {
      failed(job, error);
    }
  }
  if (written.length > 0) {
    try {
      syncfs(newDirectory.fd);
    } catch (error) {
      for (const job of written) failed(job, error, job.tmp);
      written = [];
    }
  }
  const renamed: StoreJob[] = [];
  for (const job of written) {
    try {
      renameSync(job.tmp, job.final);
      renamed.push(job);
    } catch (error) {
      failed(job, error, job.tmp);
    }
  }
  if (renamed.length > 0) {
    try {
      fsyncSync(newDirectory.fd);
      // Replaced since follow(): the renames may have gone to a new/ that the flushes did not reach.
      if (!newDirectory.isCurrent()) throw maildirReplaced(setup.directory);
      for (const job of renamed) outcomes.push({ id: job.id });
    } catch (error) {
      for (const job of renamed) failed(job, error, job.final);
    }
  }
  port?.postMessage(outcomes);
}

/**
 * Creates job.tmp with the message (the batch's syncfs makes it durable). On failure the file is removed,
 * but only if this call created it: "wx" fails on a file that someone else owns.
 */
function writeMessageFile(job: StoreJob): void {
  const fd = openSync(job.tmp, "wx", 0o600);
  try {
    try {
      // write(2) may write less than asked (a full disk reports ENOSPC only on the next call).
      for (let offset = 0; offset < job.data.length; ) {
        offset += writeSync(fd, job.data, offset, job.data.length - offset);
      }
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    removeQuietly(job.tmp);
    throw error;
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone, or the file system is failing: the stale tmp/ cleanup at the next start removes it.
  }
}

/** An error as it crosses to the other thread: its message, and its code (ENOSPC...) when it has one. */
function describe(error: unknown): { message: string; code?: string } {
  if (!(error instanceof Error)) return { message: String(error) };
  const { code } = error as NodeJS.ErrnoException;
  return code ? { message: error.message, code } : { message: error.message };
}
