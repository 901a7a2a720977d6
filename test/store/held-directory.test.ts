/**
 * HeldDirectory and FollowedDirectory: a directory held open, which tells when its path leads elsewhere
 * (the writer thread's check after its flushes, which no outside test can time into the middle of a batch)
 * and follows it there.
 */
import assert from "node:assert/strict";
import { fstatSync } from "node:fs";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { FollowedDirectory, HeldDirectory } from "../../src/store/held-directory.js";

async function tempDirectory(t: TestContext): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), "mailgate-held-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  const path = join(directory, "new");
  await mkdir(path);
  return path;
}

async function replace(path: string): Promise<void> {
  await rm(path, { recursive: true });
  await mkdir(path);
}

/** Whether descriptor `fd` is the directory that `path` leads to now. */
async function isAt(fd: number, path: string): Promise<boolean> {
  const [held, named] = [fstatSync(fd, { bigint: true }), await stat(path, { bigint: true })];
  return held.dev === named.dev && held.ino === named.ino;
}

test("HeldDirectory tells that its path was replaced, follows it, and fails where it leads nowhere", async (t) => {
  const path = await tempDirectory(t);
  const held = new HeldDirectory(path);
  t.after(() => held.close());
  assert.equal(held.isCurrent(), true);
  const before = held.fd;
  held.follow(); // unchanged: keeps what it holds
  assert.equal(held.fd, before);

  await replace(path);
  assert.equal(held.isCurrent(), false, "replaced, with the old one still held");
  held.follow();
  assert.equal(held.isCurrent(), true);
  assert.ok(await isAt(held.fd, path));

  await rm(path, { recursive: true });
  assert.equal(held.isCurrent(), false, "deleted");
  assert.throws(() => held.follow(), { code: "ENOENT" });
});

test("FollowedDirectory: a delivery's Held stays good until the path moves; concurrent followers share one re-open", async (t) => {
  const path = await tempDirectory(t);
  const directory = await FollowedDirectory.open(path);
  t.after(() => directory.close());
  const first = await directory.follow();
  assert.equal(await directory.follow(), first, "unchanged: the same Held");
  assert.ok(directory.holds(first));

  await replace(path);
  const [a, b] = await Promise.all([directory.follow(), directory.follow()]);
  assert.equal(a, b, "one re-open for both");
  assert.notEqual(a, first);
  assert.equal(directory.holds(first), false, "a delivery that took the old one fails its check");
  assert.ok(directory.holds(a));
  assert.ok(await isAt(directory.fd, path));

  await rm(path, { recursive: true });
  await assert.rejects(directory.follow(), { code: "ENOENT" });
});
