/**
 * The DATA decoder (RFC 5321 4.1.1.4 and 4.5.2): finds the end of the message, removes dot-stuffing and
 * applies the CRLF mode, as a stream over Buffers.
 *
 * Safety rules (SMTP smuggling, CVE-2023-51764/51765/51766): only <CRLF>.<CRLF> ends the message, where
 * the first CRLF is a real line end (or the DATA command's own); a dot is unstuffed only at the start of
 * such a real line; a bare CR or bare LF never starts a line for either purpose. What happens to bare
 * CR/LF inside the message is the CRLF mode's job:
 *   ensure (default): a bare LF becomes CRLF and a bare CR is removed, so the stored message has only
 *     CRLF line ends (the seed's "heal" rule; Postfix's smtpd_forbid_bare_newline = normalize).
 *   leave: bytes are kept as sent.
 *   strict: the message is marked and the server rejects it with 550 5.5.2 after its real end.
 * The header block ends at the first empty line of the message as stored: in ensure mode, a line whose
 * bytes were all removed (".<LF>", "<CR><CR><LF>") is empty too, so hooks that insert headers there and
 * whoever reads the stored message agree on where the headers end.
 *
 * Hot path: lines are found with Buffer.indexOf and unchanged runs are emitted as subarrays of the
 * input, so a clean chunk costs two native scans per line and no copy; each byte is scanned at most once
 * for LF and once for CR, whatever the mix of line ends.
 */

import { type BodyReader, BodyStop } from "./body-reader.js";

export type CrlfMode = "ensure" | "leave" | "strict";

export const CRLF_MODES: readonly CrlfMode[] = ["ensure", "leave", "strict"];

const CR = 13;
const LF = 10;
const DOT = 46;
const CRLF_BYTES = Buffer.from("\r\n");

export class DataDecoder implements BodyReader {
  private lineStart = true;
  /**
   * Bytes of the current line are in the output. The header block ends at the first line end with none:
   * an empty line of the stored message, even where ensure mode removed what the client sent on it (a
   * stuffed dot before a bare LF, bare CRs), so hooks and later readers see the same header block.
   */
  private lineHasOutput = false;
  private inHeaders = true;
  /** Why the last read() call returned (End: the message is complete). */
  stop: BodyStop = BodyStop.NeedMore;
  /**
   * Number of bare CR and bare LF seen (in strict mode, any makes the message unacceptable). Leave mode
   * does not look for bare CRs (it keeps every byte), so there only bare LFs are counted.
   */
  bareLineBreaks = 0;

  constructor(
    private readonly mode: CrlfMode,
    private readonly emit: (bytes: Buffer) => void,
  ) {}

  /**
   * Decodes input from `start`. Returns the position where it stopped, and sets `stop`. With NeedMore,
   * bytes from the returned position on (at most 2) must be given again, followed by more input.
   */
  read(input: Buffer, start: number): number {
    const { mode } = this;
    const len = input.length;
    let pos = start;
    let run = start; // first byte of the unchanged run not yet emitted
    // The next LF and CR at or after pos, each searched again only once pos has passed it (-1: none in
    // the rest of the input). Searching both from every line would scan the rest of the input once per
    // line when one of them is rare: quadratic in a message of bare LFs or bare CRs.
    let nextLf = -2;
    let nextCr = -2;

    while (pos < len) {
      if (this.lineStart) {
        if (input[pos] === DOT) {
          // ".\r\n" ends the message; "." followed by anything else is a stuffed dot (4.5.2).
          if (pos + 2 >= len) return this.pause(input, run, pos);
          if (input[pos + 1] === CR && input[pos + 2] === LF) {
            this.flush(input, run, pos);
            this.stop = BodyStop.End;
            return pos + 3;
          }
          this.flush(input, run, pos);
          pos += 1;
          run = pos;
        }
        this.lineStart = false;
      }

      if (nextLf !== -1 && nextLf < pos) nextLf = input.indexOf(LF, pos);
      const lf = nextLf;
      if (mode !== "leave") {
        if (nextCr !== -1 && nextCr < pos) nextCr = input.indexOf(CR, pos);
        const cr = nextCr;
        if (cr !== -1 && (lf === -1 || cr < lf - 1)) {
          // A CR that is not right before the next LF: bare, unless the LF is still to come.
          if (cr > pos) this.lineHasOutput = true;
          if (cr + 1 >= len) return this.pause(input, run, cr);
          this.bareLineBreaks++;
          if (mode === "ensure") {
            this.flush(input, run, cr);
            run = cr + 1;
          } else {
            this.lineHasOutput = true; // strict keeps it
          }
          pos = cr + 1;
          continue;
        }
      }
      if (lf === -1) {
        // In leave mode a CR at the very end may be the first half of a CRLF: keep it for the next call.
        const end = input[len - 1] === CR ? len - 1 : len;
        if (end > pos) this.lineHasOutput = true;
        if (end < len) return this.pause(input, run, end);
        pos = len;
        break;
      }
      if (lf > pos && input[lf - 1] === CR) {
        if (this.inHeaders && lf - 1 === pos && !this.lineHasOutput) return this.headersEnd(input, run, pos);
        this.lineStart = true;
      } else if (mode === "ensure") {
        // A bare LF: the stored message has a line end here (so an empty line after it ends the headers
        // too), but it does not start a line for the end of the message or dot-stuffing.
        if (this.inHeaders && lf === pos && !this.lineHasOutput) return this.headersEnd(input, run, pos);
        this.bareLineBreaks++;
        this.flush(input, run, lf);
        this.emit(CRLF_BYTES);
        run = lf + 1;
      } else {
        this.bareLineBreaks++;
        this.lineHasOutput = true; // kept as sent: not a line end
        pos = lf + 1;
        continue;
      }
      this.lineHasOutput = false;
      pos = lf + 1;
    }
    this.flush(input, run, pos);
    this.stop = BodyStop.NeedMore;
    return pos;
  }

  /** The header block ends at `pos`, right before the line end of its empty line. */
  private headersEnd(input: Buffer, run: number, pos: number): number {
    this.inHeaders = false;
    this.flush(input, run, pos);
    this.stop = BodyStop.HeadersEnd;
    return pos;
  }

  private pause(input: Buffer, run: number, pos: number): number {
    this.flush(input, run, pos);
    this.stop = BodyStop.NeedMore;
    return pos;
  }

  private flush(input: Buffer, from: number, to: number): void {
    if (to > from) this.emit(input.subarray(from, to));
  }
}
