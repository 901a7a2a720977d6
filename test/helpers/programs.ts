/**
 * Tests that drive a Debian program (swaks, curl, smtp-source...) skip with a clear message when it is
 * missing on a developer's machine, and fail in CI, where .ci/run installs it.
 */
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import type { TestContext } from "node:test";

const SBIN = ["/usr/sbin", "/sbin", "/usr/local/sbin"];

/** Full path of an executable named `name` on PATH or in the sbin directories, or undefined. */
export function findProgram(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter((dir) => dir !== ""), ...SBIN];
  for (const dir of dirs) {
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {}
  }
  return undefined;
}

/**
 * The path of a program a test needs. Missing, it fails the test under CI (where .ci/run installs it)
 * and otherwise skips it with a message saying what to install; then the test must return.
 */
export function needProgram(t: TestContext, name: string, debianPackage = name): string | undefined {
  const path = findProgram(name);
  if (path !== undefined) return path;
  const message = `${name} is not installed (Debian package ${debianPackage})`;
  if (process.env.CI) throw new Error(`${message}; .ci/run installs it in CI`);
  t.skip(message);
  return undefined;
}

/** True when `name` can run; otherwise skips the test (or fails it under CI). */
export function requireProgram(t: TestContext, name: string): boolean {
  return needProgram(t, name) !== undefined;
}
