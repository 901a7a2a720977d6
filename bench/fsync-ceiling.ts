/**
 * The disk's ceiling for the way `mailgate serve` stores a message (src/store/maildir.ts), without the
 * SMTP server: `files` times open(tmp/NAME, "wx"), write the message, fsync, close, rename into
 * new/NAME,S=SIZE, by `writers` concurrent writers, with the same node:fs/promises calls. It leaves out
 * the store's shared (group-commit) fsync of new/ after the renames: this is the per-file sequence only.
 *
 * As a CHILD process (the benchmark runs it right before each `mailgate serve` run of a 2 KB scenario,
 * with as many writers as the scenario has sessions, in a directory beside that run's Maildir):
 *
 *   node build/bench/fsync-ceiling.js '{"directory":".bench-tmp/maildir/x","writers":100,"files":3000,"bytes":2164}'
 *
 * It reports { type: "result", files, elapsedMs, filesPerSecond } over the IPC channel when it has one
 * (fork), else as one JSON line on stdout. It leaves its files in place: the benchmark removes them with
 * the Maildirs, at its end (see removeMaildirs in servers.ts for why not earlier).
 */
import { randomBytes } from "node:crypto";
import { type FileHandle, mkdir, open, rename } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { reportToParent, runIfEntryPoint } from "./util.js";

export interface FsyncCeilingRequest {
  /** A directory that need not exist yet; tmp/ and new/ are created in it. */
  directory: string;
  /** Concurrent writers, each storing one file at a time. */
  writers: number;
  /** Files in all, shared by the writers. */
  files: number;
  /** Bytes per file. */
  bytes: number;
}

export interface FsyncCeilingResult {
  files: number;
  /** From the first open to the last rename. */
  elapsedMs: number;
  filesPerSecond: number;
}

/** write(2) may write less than asked, as the store knows too. */
async function writeFully(file: FileHandle, buffer: Buffer): Promise<void> {
  let offset = 0;
  while (offset < buffer.length) {
    const { bytesWritten } = await file.write(buffer, offset, buffer.length - offset);
    offset += bytesWritten;
  }
}

export async function storeFsyncedFiles(request: FsyncCeilingRequest): Promise<FsyncCeilingResult> {
  const tmp = join(request.directory, "tmp");
  const fresh = join(request.directory, "new");
  for (const dir of [tmp, fresh]) await mkdir(dir, { recursive: true, mode: 0o700 });
  const content = Buffer.alloc(request.bytes, "x");
  // Names shaped like the store's (seconds.Mmicros.PpidQcounterRrandom.host), so directory entries are alike.
  const prefix = `${Math.floor(Date.now() / 1000)}.M0P${process.pid}Q`;
  let started = 0;
  const writer = async () => {
    while (started < request.files) {
      started++;
      const name = `${prefix}${started}R${randomBytes(8).toString("hex")}.bench`;
      const tmpPath = join(tmp, name);
      const file = await open(tmpPath, "wx", 0o600);
      try {
        await writeFully(file, content);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(tmpPath, join(fresh, `${name},S=${request.bytes}`));
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(request.writers, request.files) }, writer));
  const elapsedMs = performance.now() - t0;
  return { files: request.files, elapsedMs, filesPerSecond: request.files / (elapsedMs / 1000) };
}

runIfEntryPoint(import.meta.url, async () => {
  const request = JSON.parse(process.argv[2] ?? "{}") as FsyncCeilingRequest;
  for (const key of ["writers", "files", "bytes"] as const) {
    if (!Number.isSafeInteger(request[key]) || request[key] < 1) {
      throw new Error(`The request needs "${key}", a whole number of at least 1.`);
    }
  }
  if (typeof request.directory !== "string") throw new Error('The request needs "directory".');
  await reportToParent({ type: "result", ...(await storeFsyncedFiles(request)) });
});
