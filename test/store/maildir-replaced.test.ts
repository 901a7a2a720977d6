/**
 * A Maildir replaced while the store serves it (`rm -rf mail && mkdir -p mail/{tmp,new,cur}`): the store
 * works by path, so the next messages go to the new one; a delivery whose fsync of new/ may have missed
 * the directory that readers of the path see fails (451). Real files, real flushes.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { fsyncDirectory } from "../../src/store/group-commit.js";
import { MaildirStore } from "../../src/store/maildir.js";

const envelope = { from: "a@x.test", to: ["b@y.test"] };

async function* message(size: number, fill: string): AsyncGenerator<Buffer> {
  yield Buffer.alloc(size, fill);
}

async function tempDirectory(t: TestContext): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), "mailgate-replaced-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  return directory;
}

async function makeMaildir(maildir: string): Promise<void> {
  for (const sub of ["tmp", "new", "cur"]) await mkdir(join(maildir, sub), { recursive: true });
}

/** What an administrator does to a Maildir while it is served: deletes it and makes a fresh one. */
async function replaceMaildir(maildir: string): Promise<void> {
  await rm(maildir, { recursive: true });
  await makeMaildir(maildir);
}

/** Delivers one message of `size` bytes and checks that it is in `maildir`/new/ now, byte-exact. */
async function deliverVisible(store: MaildirStore, maildir: string, size: number, fill: string) {
  const receipt = await store.deliver(envelope, message(size, fill));
  assert.equal(receipt.location, join(maildir, "new", `${receipt.id},S=${receipt.size}`));
  assert.ok((await readdir(join(maildir, "new"))).includes(`${receipt.id},S=${receipt.size}`));
  const stored = await readFile(receipt.location);
  assert.deepEqual(stored.subarray(stored.length - size), Buffer.alloc(size, fill));
  return receipt;
}

test("a Maildir replaced while serving gets the next messages", async (t) => {
  const maildir = join(await tempDirectory(t), "Maildir");
  const store = await MaildirStore.open(maildir);
  await deliverVisible(store, maildir, 100, "a");
  await replaceMaildir(maildir);
  await deliverVisible(store, maildir, 100, "b");
  assert.equal((await readdir(join(maildir, "new"))).length, 1, "only the message after the replacement");
});

test("a Maildir replaced between a message's rename and the fsync of new/ fails that delivery", async (t) => {
  const maildir = join(await tempDirectory(t), "Maildir");
  let replaceBeforeFsync = false;
  const store = await MaildirStore.open(maildir, {
    fsyncDirectory: async (directory) => {
      // The rename went into the old new/; the fsync below reaches the new one, which lacks the file.
      if (replaceBeforeFsync) await replaceMaildir(maildir);
      replaceBeforeFsync = false;
      await fsyncDirectory(directory);
    },
  });
  await deliverVisible(store, maildir, 100, "a");
  replaceBeforeFsync = true;
  await assert.rejects(store.deliver(envelope, message(100, "b")), /replaced/);
  assert.deepEqual(await readdir(join(maildir, "new")), []);
  await deliverVisible(store, maildir, 100, "c");
});

test("a Maildir deleted while serving is not recreated: deliveries fail until it is back", async (t) => {
  const maildir = join(await tempDirectory(t), "Maildir");
  const store = await MaildirStore.open(maildir);
  await deliverVisible(store, maildir, 100, "a");
  await rm(maildir, { recursive: true });
  await mkdir(maildir);
  await assert.rejects(store.deliver(envelope, message(100, "b")), { code: "ENOENT" });
  assert.deepEqual(await readdir(maildir), [], "the store made nothing in the new directory");
  await makeMaildir(maildir);
  await deliverVisible(store, maildir, 100, "c");
});
