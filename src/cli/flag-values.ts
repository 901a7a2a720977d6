/** What every flag parser of the CLI shares: the error for a user's mistake, flag names, whole-number values. */

/** A mistake in the command line: printed as one sentence with the usage line, exit status 2. */
export class UsageError extends Error {}

/** `value` as a whole number of at least `min`, or a UsageError naming --`flag`. */
export function wholeNumber(flag: string, value: string, min = 0): number {
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value)) || Number(value) < min) {
    const least = min > 0 ? ` of at least ${min}` : "";
    throw new UsageError(`Invalid value for --${flag}: "${value}"; it accepts a whole number${least}.`);
  }
  return Number(value);
}

/** An option's name as a flag: maxConnections → max-connections. */
export function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
