/**
 * Fuzz target: the DATA decoder (src/protocol/data.ts) on arbitrary message bytes, whole and cut at
 * random places, in each CRLF mode.
 *
 * Input: [CRLF mode][split seed][the bytes after the DATA command's CRLF].
 *
 * Invariants:
 *   - it never throws;
 *   - where the input is cut changes nothing: the output, the end of the message, the end of the headers
 *     and the count of bare line breaks are those of the whole input in one call;
 *   - memory is bounded: waiting for more input, it holds back at most 2 bytes;
 *   - only <CRLF>.<CRLF> ends the message (no smuggling): the end is right after the first ".<CRLF>" that
 *     starts the data or follows a CRLF (a reference check, written apart);
 *   - in "ensure" mode the stored message has CRLF line ends only.
 */

import { BodyStop } from "../../src/protocol/body-reader.js";
import { type CrlfMode, DataDecoder } from "../../src/protocol/data.js";
import { invariant } from "../finding.js";
import { splitBytes } from "../split.js";

const MODES: readonly CrlfMode[] = ["ensure", "leave", "strict"];
const END_LINE = Buffer.from(".\r\n");

interface Decoded {
  output: Buffer;
  /** Offset in the input just after the end of the message; -1 when it did not end. */
  end: number;
  /** Offset in the output where the header block ended; -1 when it did not. */
  headersEnd: number;
  bareLineBreaks: number;
}

/** Feeds the pieces as the session does: what the decoder did not take is given again with more. */
function decode(mode: CrlfMode, pieces: Buffer[]): Decoded {
  const parts: Buffer[] = [];
  let outputLength = 0;
  const decoder = new DataDecoder(mode, (bytes) => {
    parts.push(Buffer.from(bytes));
    outputLength += bytes.length;
  });
  let headersEnd = -1;
  let buffered: Buffer = Buffer.alloc(0);
  let consumed = 0; // input offset of buffered[0]
  for (const piece of pieces) {
    buffered = Buffer.concat([buffered, piece]);
    let pos = 0;
    for (;;) {
      const next = decoder.read(buffered, pos);
      invariant(
        next >= pos && next <= buffered.length,
        `decode() returned ${next} for ${pos}..${buffered.length}`,
      );
      pos = next;
      if (decoder.stop === BodyStop.End) {
        return {
          output: Buffer.concat(parts),
          end: consumed + pos,
          headersEnd,
          bareLineBreaks: decoder.bareLineBreaks,
        };
      }
      if (decoder.stop === BodyStop.NeedMore) break;
      invariant(headersEnd === -1, "the header block ended twice");
      headersEnd = outputLength;
    }
    invariant(buffered.length - pos <= 2, `${buffered.length - pos} bytes held back for more input`);
    consumed += pos;
    buffered = buffered.subarray(pos);
  }
  return { output: Buffer.concat(parts), end: -1, headersEnd, bareLineBreaks: decoder.bareLineBreaks };
}

/** Where the message ends, found apart from the decoder: after the first ".<CRLF>" at a real line start. */
function referenceEnd(input: Buffer): number {
  for (let at = input.indexOf(END_LINE); at !== -1; at = input.indexOf(END_LINE, at + 1)) {
    if (at === 0 || (input[at - 2] === 13 && input[at - 1] === 10)) return at + END_LINE.length;
  }
  return -1;
}

export function fuzz(data: Buffer): void {
  if (data.length < 2) return;
  const mode = MODES[(data[0] as number) % MODES.length] as CrlfMode;
  const input = data.subarray(2);
  const whole = decode(mode, [input]);
  const cut = decode(mode, splitBytes(input, data[1] as number));
  invariant(cut.end === whole.end, `cut input ends at ${cut.end}, whole at ${whole.end}`);
  invariant(
    cut.headersEnd === whole.headersEnd,
    `headers end at ${cut.headersEnd} cut, ${whole.headersEnd} whole`,
  );
  invariant(cut.output.equals(whole.output), "cut input decodes to other bytes");
  invariant(cut.bareLineBreaks === whole.bareLineBreaks, "cut input counts other bare line breaks");
  invariant(
    whole.end === referenceEnd(input),
    `the message ends at ${whole.end}, not ${referenceEnd(input)}`,
  );
  if (mode === "ensure") {
    const text = whole.output.toString("latin1");
    invariant(!/\r(?!\n)|(?<!\r)\n/.test(text), "a bare CR or LF in the stored message (ensure mode)");
  }
}
