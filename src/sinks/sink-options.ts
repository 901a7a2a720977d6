/** What every sink takes: checks of its option values (each failing with a sentence that names the option), and how it starts. */

/** `value`, or `fallback` when it is undefined; a TypeError unless it is a positive integer. */
export function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) {
    throw new TypeError(`Invalid option ${name}: ${value} is not a positive integer.`);
  }
  return value;
}

/** How a broker sink's start() treats a broker it cannot reach. */
export interface SinkStartOptions {
  /**
   * false (default): start() rejects with one sentence and the sink is closed. true: start() resolves
   * with a warning and the sink keeps trying in the background with its reconnect backoff, answering
   * SinkUnavailable (451) meanwhile; for a spool in front, which takes those messages.
   */
  retryInBackground?: boolean;
}
