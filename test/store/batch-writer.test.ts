/**
 * BatchWriter, the thread that stores whole small messages for MaildirStore when syncfs is available:
 * concurrent messages are stored byte-exact, a failed message leaves nothing behind, a thread that cannot
 * run fails the deliveries it had (and the next one starts a new thread), close() ends it.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { BatchWriter } from "../../src/store/batch-writer.js";
import { loadSyncfs } from "../../src/store/syncfs.js";

/** A Maildir with tmp/ and new/, or undefined (the test skips) where syncfs cannot be called. */
async function maildir(t: TestContext): Promise<string | undefined> {
  const syncfs = await loadSyncfs();
  if (typeof syncfs === "string") {
    assert.ok(!process.env.CI, `syncfs must be available in CI: ${syncfs}`);
    t.skip(`syncfs unavailable here: ${syncfs}`);
    return undefined;
  }
  const directory = await mkdtemp(join(tmpdir(), "mailgate-writer-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  for (const sub of ["tmp", "new"]) await mkdir(join(directory, sub));
  return directory;
}

/** A buffer that owns its memory, as store() requires. */
function owned(text: string): Buffer {
  const source = Buffer.from(text);
  const data = Buffer.allocUnsafeSlow(source.length);
  source.copy(data);
  return data;
}

test("100 concurrent messages are all stored byte-exact in new/, and tmp/ is left empty", async (t) => {
  const directory = await maildir(t);
  if (!directory) return;
  const writer = new BatchWriter({ directory });
  t.after(() => writer.close());
  const names = Array.from({ length: 100 }, (_, i) => `m${i}`);
  await Promise.all(
    names.map((name) =>
      writer.store(join(directory, "tmp", name), join(directory, "new", name), owned(`body of ${name}`)),
    ),
  );
  assert.deepEqual((await readdir(join(directory, "new"))).sort(), [...names].sort());
  for (const name of names)
    assert.equal(await readFile(join(directory, "new", name), "utf8"), `body of ${name}`);
  assert.deepEqual(await readdir(join(directory, "tmp")), []);
});

test("a message whose file cannot be created fails alone, and never touches a file someone else owns", async (t) => {
  const directory = await maildir(t);
  if (!directory) return;
  const writer = new BatchWriter({ directory });
  t.after(() => writer.close());
  // Another delivery's file already has this name: "wx" refuses it, and it must survive untouched.
  await writeFile(join(directory, "tmp", "taken"), "someone else's");
  const [clash, fine] = await Promise.allSettled([
    writer.store(join(directory, "tmp", "taken"), join(directory, "new", "taken"), owned("mine")),
    writer.store(join(directory, "tmp", "free"), join(directory, "new", "free"), owned("fine")),
  ]);
  assert.equal(clash.status, "rejected");
  assert.equal((clash as PromiseRejectedResult).reason.code, "EEXIST");
  assert.equal(fine.status, "fulfilled");
  assert.equal(await readFile(join(directory, "tmp", "taken"), "utf8"), "someone else's");
  assert.deepEqual(await readdir(join(directory, "new")), ["free"]);
});

test("a rename that fails removes its file from tmp/ and fails that message only", async (t) => {
  const directory = await maildir(t);
  if (!directory) return;
  const writer = new BatchWriter({ directory });
  t.after(() => writer.close());
  const outcomes = await Promise.allSettled([
    writer.store(join(directory, "tmp", "lost"), join(directory, "new", "no-such-dir", "lost"), owned("x")),
    writer.store(join(directory, "tmp", "kept"), join(directory, "new", "kept"), owned("y")),
  ]);
  assert.deepEqual(
    outcomes.map((outcome) => outcome.status),
    ["rejected", "fulfilled"],
  );
  assert.deepEqual(await readdir(join(directory, "tmp")), []);
  assert.deepEqual(await readdir(join(directory, "new")), ["kept"]);
});

test("a thread that cannot start fails what it was given; once fixed, the next message starts a new one", async (t) => {
  const directory = await maildir(t);
  if (!directory) return;
  await rm(join(directory, "new"), { recursive: true });
  const writer = new BatchWriter({ directory });
  t.after(() => writer.close());
  await assert.rejects(
    writer.store(join(directory, "tmp", "a"), join(directory, "new", "a"), owned("a")),
    /ENOENT/,
  );
  await mkdir(join(directory, "new"));
  await writer.store(join(directory, "tmp", "b"), join(directory, "new", "b"), owned("b"));
  assert.deepEqual(await readdir(join(directory, "new")), ["b"]);
});

test("close() ends the thread: a process holding an idle writer can exit", async (t) => {
  const directory = await maildir(t);
  if (!directory) return;
  const writer = new BatchWriter({ directory });
  await writer.store(join(directory, "tmp", "a"), join(directory, "new", "a"), owned("a"));
  await writer.close();
  await writer.close(); // twice is harmless
});
