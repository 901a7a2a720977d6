/**
 * Fuzz target: the BDAT chunk reader (src/protocol/chunking.ts) on arbitrary message bytes, cut into
 * chunks of random sizes and delivered in pieces of random sizes.
 *
 * Input: [chunk seed][split seed][the message].
 *
 * Invariants:
 *   - it never throws, and never reads outside what it is given;
 *   - the message comes out exactly as sent (BDAT content is binary: nothing added, dropped or changed),
 *     whatever the chunks and the pieces;
 *   - every chunk ends after exactly the octets its BDAT announced;
 *   - the header block ends once at most, before the first empty line (a CRLF at the start of the message
 *     or right after a CRLF; a reference check, written apart), with the bytes before it given out first.
 */

import { BodyStop } from "../../src/protocol/body-reader.js";
import { ChunkReader } from "../../src/protocol/chunking.js";
import { invariant } from "../finding.js";
import { seededRandom, splitBytes } from "../split.js";

/** Cuts the message into chunk sizes (empty chunks included: BDAT 0 is allowed). */
function chunkSizes(length: number, seed: number): number[] {
  const random = seededRandom(seed);
  const sizes: number[] = [];
  let left = length;
  while (left > 0 || sizes.length === 0) {
    const size = random() < 0.1 ? 0 : Math.min(left, 1 + Math.floor(random() * 64));
    sizes.push(size);
    left -= size;
  }
  return sizes;
}

/** Where the header block ends, found apart from the reader; -1 when it does not. */
function referenceHeadersEnd(message: Buffer): number {
  for (let at = message.indexOf("\r\n"); at !== -1; at = message.indexOf("\r\n", at + 1)) {
    if (at === 0 || (message[at - 2] === 13 && message[at - 1] === 10)) return at;
  }
  return -1;
}

export function fuzz(data: Buffer): void {
  if (data.length < 2) return;
  const message = data.subarray(2);
  const parts: Buffer[] = [];
  let emitted = 0;
  let headersEnd = -1;
  const reader = new ChunkReader((bytes) => {
    parts.push(Buffer.from(bytes));
    emitted += bytes.length;
  });
  const pieces = splitBytes(message, data[1] as number);
  let buffered: Buffer = Buffer.alloc(0);
  for (const size of chunkSizes(message.length, data[0] as number)) {
    reader.startChunk(size);
    let read = 0;
    for (;;) {
      if (buffered.length === 0 && size > 0) buffered = pieces.shift() ?? Buffer.alloc(0);
      const pos = reader.read(buffered, 0);
      invariant(pos >= 0 && pos <= buffered.length, `read() returned ${pos} of ${buffered.length}`);
      read += pos;
      buffered = buffered.subarray(pos);
      invariant(
        reader.remaining === size - read,
        `${reader.remaining} octets remaining after ${read} of ${size}`,
      );
      if (reader.stop === BodyStop.HeadersEnd) {
        invariant(headersEnd === -1, "the header block ended twice");
        headersEnd = emitted;
      } else if (reader.stop === BodyStop.End) {
        break;
      } else {
        invariant(buffered.length === 0, "the reader stopped with input left and the chunk unfinished");
        invariant(pieces.length > 0, "a chunk wants more octets than its BDAT announced");
      }
    }
  }
  reader.finish();
  const output = Buffer.concat(parts);
  invariant(output.equals(message), "the message came out changed");
  invariant(headersEnd === referenceHeadersEnd(message), `headers end at ${headersEnd}`);
}
