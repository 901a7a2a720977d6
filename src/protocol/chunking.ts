/**
 * The body of BDAT chunks (CHUNKING, RFC 3030): exactly the announced number of octets, taken as they
 * are (no dot-stuffing, no line-end rules: BINARYMIME content is binary). Besides counting, it finds where
 * the header block ends (the first empty line) so the headers hook fires as it does for DATA, even when
 * the empty line is split across chunks.
 */

import { type BodyReader, BodyStop } from "./body-reader.js";

const CR = 13;
const LF = 10;
const CR_BYTE = Buffer.from([CR]);

enum HeaderState {
  MidLine = 0,
  AfterCr = 1,
  LineStart = 2,
  /** At a line start, a CR that may begin the empty line: not emitted until the next byte says. */
  LineStartCr = 3,
  Done = 4,
}

export class ChunkReader implements BodyReader {
  /** Octets of the current chunk still to come. */
  remaining = 0;
  stop: BodyStop = BodyStop.NeedMore;
  private state = HeaderState.LineStart;
  /** A CR that ended an earlier input at a line start: content, or the start of the empty line. */
  private heldCr = false;
  private headersJustEnded = false;

  constructor(private readonly emit: (bytes: Buffer) => void) {}

  startChunk(size: number): void {
    this.remaining = size;
  }

  /** Reads chunk octets from `start`; returns the position after what it consumed, and sets `stop`. */
  read(input: Buffer, start: number): number {
    const end = Math.min(input.length, start + this.remaining);
    let pos: number;
    let headersEnd = false;
    if (this.state === HeaderState.Done) {
      this.releaseHeldCr();
      if (end > start) this.emit(input.subarray(start, end));
      pos = end;
    } else {
      pos = this.scanHeaders(input, start, end);
      headersEnd = this.headersJustEnded;
      this.headersJustEnded = false;
    }
    this.remaining -= pos - start;
    if (headersEnd) this.stop = BodyStop.HeadersEnd;
    else this.stop = this.remaining === 0 ? BodyStop.End : BodyStop.NeedMore;
    return pos;
  }

  /** The message is complete (BDAT ... LAST): a held CR was content after all. */
  finish(): void {
    this.releaseHeldCr();
  }

  private scanHeaders(input: Buffer, start: number, end: number): number {
    const run = start; // first byte not yet emitted
    for (let i = start; i < end; i++) {
      const c = input[i];
      switch (this.state) {
        case HeaderState.LineStart:
          this.state = c === CR ? HeaderState.LineStartCr : HeaderState.MidLine;
          break;
        case HeaderState.LineStartCr:
          if (c === LF) {
            // The empty line: the headers end before its CR, which is emitted after the hook.
            this.state = HeaderState.Done;
            this.headersJustEnded = true;
            const cr = this.heldCr ? i : i - 1;
            if (cr > run) this.emit(input.subarray(run, cr));
            return cr;
          }
          this.releaseHeldCr();
          this.state = c === CR ? HeaderState.AfterCr : HeaderState.MidLine;
          break;
        case HeaderState.AfterCr:
          this.state =
            c === LF ? HeaderState.LineStart : c === CR ? HeaderState.AfterCr : HeaderState.MidLine;
          break;
        default:
          if (c === CR) this.state = HeaderState.AfterCr;
      }
    }
    if (this.state === HeaderState.LineStartCr && !this.heldCr && end > start) {
      // The input ends on a CR that may begin the empty line: keep it until the next byte says.
      if (end - 1 > run) this.emit(input.subarray(run, end - 1));
      this.heldCr = true;
      return end;
    }
    if (end > run) this.emit(input.subarray(run, end));
    return end;
  }

  private releaseHeldCr(): void {
    if (this.heldCr) this.emit(CR_BYTE);
    this.heldCr = false;
  }
}
