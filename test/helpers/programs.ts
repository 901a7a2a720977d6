/**
 * Tests that drive a Debian program (swaks, curl, smtp-source...) skip with a clear message when it is
 * missing on a developer's machine, and fail in CI, where .ci/run installs it.
 */
import { spawnSync } from "node:child_process";
import type { TestContext } from "node:test";

const found = new Map<string, boolean>();

export function hasProgram(name: string): boolean {
  let present = found.get(name);
  if (present === undefined) {
    present = spawnSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" }).status === 0;
    found.set(name, present);
  }
  return present;
}

/** True when `name` can run; otherwise skips the test (or throws under CI=true). */
export function requireProgram(t: TestContext, name: string): boolean {
  if (hasProgram(name)) return true;
  const message = `${name} is not installed (Debian: apt-get install ${name === "smtp-source" ? "postfix" : name})`;
  if (process.env.CI) throw new Error(`${message}; .ci/run should have installed it`);
  t.skip(message);
  return false;
}
