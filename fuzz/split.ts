/**
 * Cuts fuzz input into the pieces a socket might deliver, reproducibly: the cut points come from a small
 * seeded generator, so one seed byte of the input moves every cut while the bytes themselves stay put.
 */

import { seededRandom } from "../test/helpers/seeded-random.js";

export { seededRandom };

/**
 * Splits `data` into consecutive non-empty pieces (their concatenation is `data`). Sizes mix single bytes
 * (every boundary inside a CRLF or a command gets hit), short runs and long ones. An odd seed also cuts
 * after every LF, as a client that waits for each reply sends its lines; an even one cuts anywhere.
 */
export function splitBytes(data: Buffer, seed: number): Buffer[] {
  const random = seededRandom(seed);
  const lineWise = (seed & 1) === 1;
  const pieces: Buffer[] = [];
  let at = 0;
  while (at < data.length) {
    const pick = random();
    const longest = pick < 0.3 ? 2 : pick < 0.6 ? 16 : pick < 0.9 ? 512 : data.length;
    let end = at + 1 + Math.floor(random() * longest);
    if (lineWise) {
      const lineEnd = data.indexOf(10, at);
      if (lineEnd !== -1 && lineEnd < end) end = lineEnd + 1;
    }
    pieces.push(data.subarray(at, end));
    at = end;
  }
  return pieces;
}
