/**
 * Log output gathered over one turn of the event loop and written at its end in one go: a busy server logs
 * a line per message, and writing each line on its own costs a system call per line (stdout to a file or a
 * pipe is written synchronously). Lines keep their order; what is gathered is written at the end of the
 * turn, before it exceeds PIPE_BUF (so that each write to a pipe shared with other processes, as workers
 * share their primary's stdout, stays atomic: whole lines, never interleaved; a single line longer than
 * that is written alone), and when the process exits (a crash too, before its report is printed). A
 * process killed outright (SIGKILL, an abort) loses at most the current turn's lines.
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
    // Node emits 'exit' before it prints an uncaught exception: the last lines come before the report.
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

  /** Writes what is queued now; `done` (pino's flush callback) is called once it is written. */
  flush(done?: (error?: Error) => void): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = null;
    if (this.pending !== "") {
      const text = this.pending;
      this.pending = "";
      this.pendingBytes = 0;
      this.stream.write(text);
    }
    done?.();
  }
}

let stdoutOutput: BatchedOutput | undefined;

/**
 * The one batched writer of this process's stdout (the text and the JSON log share it, in order). When
 * stdout fails (EPIPE: whoever read it is gone), the log stops and the server goes on serving: one warning
 * on stderr says so. Without a listener the error would end the process.
 */
export function batchedStdout(): BatchedOutput {
  if (stdoutOutput) return stdoutOutput;
  let failed = false;
  const stdout = process.stdout;
  stdout.on("error", (error: Error) => {
    if (failed) return;
    failed = true;
    process.emitWarning(`mailgate: stdout failed (${error.message}); the log is no longer written.`);
  });
  stdoutOutput = new BatchedOutput({ write: (text: string) => !failed && stdout.write(text) });
  return stdoutOutput;
}
