/**
 * The session's input: bytes received and not handled yet. Command lines and SASL response lines are
 * taken from it by takeLine() (one framing for both), message octets by a body reader (body-reader.ts).
 * A line longer than its limit is never buffered whole: its bytes are dropped as they come, and the line
 * is reported as too long once its end arrives.
 */
import type { BodyReader } from "./body-reader.js";

const CR = 13;
const LF = 10;
const EMPTY = Buffer.alloc(0);

/** What takeLine() found. */
export enum TakenLine {
  /** No whole line is buffered yet. */
  None = 0,
  /** A line: lineStart and lineEnd delimit it in `bytes`, without its line end. */
  Line = 1,
  /** A line over the limit ended; its bytes are gone. */
  TooLong = 2,
}

export class InputBuffer {
  /** The buffered input; `pos` is its first unread byte. */
  private buffer: Buffer = EMPTY;
  private at = 0;
  /** Bytes of an over-long line dropped so far; -1 while no line is being dropped. */
  private skipped = -1;
  /** The last line taken: its first byte and the end of its text (before CR LF or LF) in `bytes`. */
  lineStart = 0;
  lineEnd = 0;
  /** The last line taken ended with CR LF (not a bare LF). */
  lineEndsWithCrlf = false;

  /** The buffer the positions refer to. It is replaced when input arrives, so read it again after a wait. */
  get bytes(): Buffer {
    return this.buffer;
  }

  /** The first unread byte in `bytes`. */
  get offset(): number {
    return this.at;
  }

  /** Bytes received and not handled yet. */
  get buffered(): number {
    return this.buffer.length - this.at;
  }

  /** Bytes dropped of the over-long line under way (0 when none is). */
  get skippedLineBytes(): number {
    return Math.max(this.skipped, 0);
  }

  append(chunk: Buffer): void {
    if (this.at >= this.buffer.length) {
      this.buffer = chunk;
    } else {
      this.buffer = Buffer.concat([this.buffer.subarray(this.at), chunk]);
    }
    this.at = 0;
  }

  /** Forgets everything buffered (STARTTLS: what the client sent after the command is never read). */
  drop(): void {
    this.buffer = EMPTY;
    this.at = 0;
  }

  /**
   * Takes the next line if a whole one is buffered. `max` counts the line end too; a longer line is dropped
   * as it comes and reported as TooLong once it ends.
   */
  takeLine(max: number): TakenLine {
    const input = this.buffer;
    const start = this.at;
    const lf = input.indexOf(LF, start);
    if (lf === -1) {
      const pending = input.length - start;
      if (this.skipped >= 0 || pending > max) {
        this.skipped = Math.max(this.skipped, 0) + pending;
        this.drop();
      }
      return TakenLine.None;
    }
    this.at = lf + 1;
    const tooLong = this.skipped >= 0 || lf + 1 - start > max;
    this.skipped = -1;
    if (tooLong) return TakenLine.TooLong;
    this.lineStart = start;
    this.lineEndsWithCrlf = lf > start && input[lf - 1] === CR;
    this.lineEnd = this.lineEndsWithCrlf ? lf - 1 : lf;
    return TakenLine.Line;
  }

  /** The text of the last line taken, one character per octet (SASL lines are counted in octets). */
  lineText(): string {
    return this.buffer.toString("latin1", this.lineStart, this.lineEnd);
  }

  /** Lets `reader` read from the buffered input; returns how many bytes it consumed. */
  readBody(reader: BodyReader): number {
    const start = this.at;
    this.at = reader.read(this.buffer, start);
    return this.at - start;
  }

  /** Drops up to `max` buffered bytes (a refused BDAT chunk); returns how many. */
  skip(max: number): number {
    const skipped = Math.min(this.buffer.length - this.at, max);
    this.at += skipped;
    return skipped;
  }
}
