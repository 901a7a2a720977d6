/**
 * Log output gathered over one turn of the event loop and written at its end in one go: a busy server logs
 * a line per message, and writing each line on its own costs a system call per line (stdout to a file or a
 * pipe is written synchronously). Lines keep their order; what is gathered is written at the end of the
 * turn, before it exceeds PIPE_BUF (so that each write to a pipe shared with other processes, as workers
 * share their primary's stdout, stays atomic: whole lines, never interleaved), and when the process exits.
 * A process killed outright (SIGKILL, an abort) loses at most the current turn's lines.
 */

import type { LineSink } from "./logger.js";

/** Linux's PIPE_BUF: writes of at most this many bytes to a pipe are never interleaved with others'. */
const ATOMIC_WRITE_BYTES = 4096;

export class BatchedOutput {
  private pending = "";
  private pendingBytes = 0;
  private scheduled: NodeJS.Immediate | null = null;
  private readonly flushNow = () => this.flush();

  constructor(private readonly stream: LineSink) {
    process.on("exit", this.flushNow);
  }

  /** Queues `text` (whole lines) for the end of this turn. */
  write(text: string): void {
    const bytes = Buffer.byteLength(text);
    if (this.pendingBytes + bytes > ATOMIC_WRITE_BYTES) this.flush();
    this.pending += text;
    this.pendingBytes += bytes;
    this.scheduled ??= setImmediate(this.flushNow);
  }

  /** Writes what is queued now. */
  flush(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = null;
    if (this.pending === "") return;
    const text = this.pending;
    this.pending = "";
    this.pendingBytes = 0;
    this.stream.write(text);
  }
}

let stdoutOutput: BatchedOutput | undefined;

/** The one batched writer of this process's stdout (the text and the JSON log share it, in order). */
export function batchedStdout(): BatchedOutput {
  stdoutOutput ??= new BatchedOutput(process.stdout);
  return stdoutOutput;
}
