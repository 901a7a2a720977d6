/**
 * A broken invariant: what a fuzz target throws when the code under test misbehaves (as opposed to an
 * exception escaping from it, which is a finding too). The message says which rule broke and how.
 */
export class FuzzFinding extends Error {
  override readonly name = "FuzzFinding";
}

/** Throws a FuzzFinding with `message` unless `condition` holds. */
export function invariant(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new FuzzFinding(typeof message === "string" ? message : message());
}
