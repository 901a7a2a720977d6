/** Checks of the option values every sink takes, each failing with a sentence that names the option. */

/** `value`, or `fallback` when it is undefined; a TypeError unless it is a positive integer. */
export function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) {
    throw new TypeError(`Invalid option ${name}: ${value} is not a positive integer.`);
  }
  return value;
}
