/**
 * --recipients FILE re-read on SIGHUP, when two reloads overlap (two SIGHUPs in a row while the file is
 * replaced): the reload asked last decides, whichever read finishes last. A FIFO holds the first read
 * until the second is done.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { RecipientPolicy } from "../../src/cli/recipient-policy.js";

function accepts(policy: RecipientPolicy, address: string): boolean {
  try {
    policy.check(address);
    return true;
  } catch {
    return false;
  }
}

test("of two overlapping reloads, the one asked last is in force, even when the first read ends last", async (t) => {
  const directory = await mkdtemp(join(tmpdir(), "mailgate-recipients-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  const file = join(directory, "recipients");
  await writeFile(file, "old@example.com\n");
  const policy = (await RecipientPolicy.open([], file)) as RecipientPolicy;

  // First SIGHUP: the file is (for this test) a FIFO, so its read waits for a writer.
  const fifo = join(directory, "slow");
  execFileSync("mkfifo", [fifo]);
  await rm(file);
  await symlink(fifo, file);
  const first = policy.reload();
  // The file is replaced by the new list, and a second SIGHUP reads it at once.
  const fresh = join(directory, "fresh");
  await writeFile(fresh, "new@example.com\n");
  await rename(fresh, file);
  await policy.reload();
  assert.ok(accepts(policy, "new@example.com"));
  // Now the first read ends, with what the file held before.
  await writeFile(fifo, "old@example.com\n");
  await first;
  assert.ok(accepts(policy, "new@example.com"), "the later reload's list stays in force");
  assert.ok(!accepts(policy, "old@example.com"));
});
