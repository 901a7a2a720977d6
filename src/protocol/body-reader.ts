/**
 * A message body as it arrives, whichever command announced it: the DATA decoder (data.ts) and the BDAT
 * chunk reader (chunking.ts) both read buffered input into the message and say why they stopped, and
 * the session pumps either with the same loop.
 */

/** Why read() returned. */
export enum BodyStop {
  /** The input ran out: what was read is in the message, the rest needs more input. */
  NeedMore = 0,
  /** The header block ends at the returned position (before its empty line): a hook may add headers. */
  HeadersEnd = 1,
  /** The body ends at the returned position: the message (DATA) or the chunk (BDAT) is complete. */
  End = 2,
}

export interface BodyReader {
  /** Reads input from `start`; returns the position after what it consumed, and sets `stop`. */
  read(input: Buffer, start: number): number;
  /** Why the last read() returned. */
  readonly stop: BodyStop;
}
