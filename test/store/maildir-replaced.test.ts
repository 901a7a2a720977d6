/**
 * A Maildir replaced while the store serves it (`rm -rf mail && mkdir -p mail/{tmp,new,cur}`, or a file
 * system mounted at its path): a delivery succeeds only if its flushes reached the directory and file
 * system that readers of the path see, never through a descriptor of the old one; otherwise it fails
 * (451). Real files, real flushes; what the store flushes through is observed in /proc/self/fd.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { promisify } from "node:util";
import { fsyncDirectory } from "../../src/store/group-commit.js";
import { MaildirStore } from "../../src/store/maildir.js";
import { loadSyncfs } from "../../src/store/syncfs.js";

const run = promisify(execFile);

const envelope = { from: "a@x.test", to: ["b@y.test"] };

/** Over 256 KiB: streamed by the SMTP thread instead of stored whole by the writer thread. */
const LARGE = 300 * 1024;

async function* message(size: number, fill: string): AsyncGenerator<Buffer> {
  yield Buffer.alloc(size, fill);
}

async function tempDirectory(t: TestContext): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), "mailgate-replaced-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  return directory;
}

/** Whether the real syncfs can be called here; the test skips where it cannot (never in CI). */
async function syncfsAvailable(t: TestContext): Promise<boolean> {
  const syncfs = await loadSyncfs();
  if (typeof syncfs !== "string") return true;
  assert.ok(!process.env.CI, `syncfs must be available in CI: ${syncfs}`);
  t.skip(`syncfs unavailable here: ${syncfs}`);
  return false;
}

async function makeMaildir(maildir: string): Promise<void> {
  for (const sub of ["tmp", "new", "cur"]) await mkdir(join(maildir, sub), { recursive: true });
}

/** What an administrator does to a Maildir while it is served: deletes it and makes a fresh one. */
async function replaceMaildir(maildir: string): Promise<void> {
  await rm(maildir, { recursive: true });
  await makeMaildir(maildir);
}

/**
 * The descriptors of `directory` that this process (the writer thread included) holds open but that are
 * not the directory its path leads to now: deleted (Linux names those "path (deleted)"), or hidden under a
 * mount. A flush through one of those misses the directory a Maildir reader sees.
 */
async function staleDescriptors(directory: string): Promise<string[]> {
  const stale: string[] = [];
  for (const fd of await readdir("/proc/self/fd")) {
    const link = await readlink(`/proc/self/fd/${fd}`).catch(() => "");
    if (link !== directory && link !== `${directory} (deleted)`) continue;
    // stat of the /proc link is the held directory itself; stat of its path is what the path names now.
    const held = await stat(`/proc/self/fd/${fd}`, { bigint: true }).catch(() => undefined);
    if (!held?.isDirectory()) continue;
    const named = await stat(link, { bigint: true }).catch(() => undefined);
    if (named?.dev !== held.dev || named.ino !== held.ino) stale.push(link);
  }
  return stale;
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

// Each path flushes through its own directory: the writer thread through new/ (its syncfs and its fsync),
// the streaming path's syncfs through the Maildir (its fsync of new/ opens it by path).
for (const [path, size, flushedThrough] of [
  ["a small message (the writer thread)", 100, "new"],
  ["a large message (streamed)", LARGE, ""],
] as const) {
  test(`syncfs, ${path}: a Maildir replaced while serving is followed, and nothing is flushed through the old one`, async (t) => {
    if (!(await syncfsAvailable(t))) return;
    const maildir = join(await tempDirectory(t), "Maildir");
    const store = await MaildirStore.open(maildir, { flush: "syncfs" });
    t.after(() => store.close());
    await deliverVisible(store, maildir, size, "a");

    await replaceMaildir(maildir);
    await deliverVisible(store, maildir, size, "b");
    assert.deepEqual(
      await staleDescriptors(join(maildir, flushedThrough)),
      [],
      "flushed through the new one",
    );
    assert.deepEqual(await readdir(join(maildir, "tmp")), []);
  });
}

test("syncfs: a file system mounted at the Maildir's path while serving gets the messages and their flushes", async (t) => {
  if (!(await syncfsAvailable(t))) return;
  const directory = await mkdtemp(join(tmpdir(), "mailgate-replaced-"));
  const maildir = join(directory, "Maildir");
  const store = await MaildirStore.open(maildir, { flush: "syncfs" });
  let mounted = false;
  // One hook, in this order: a file system cannot be unmounted while the store holds it open, nor the
  // temporary directory removed while something is mounted in it.
  t.after(async () => {
    await store.close();
    if (mounted) await run("umount", [maildir]);
    await rm(directory, { recursive: true, force: true });
  });
  await deliverVisible(store, maildir, 100, "a");
  try {
    await run("mount", ["-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", maildir]);
    mounted = true;
  } catch (error) {
    t.skip(`cannot mount a tmpfs here (needs root): ${(error as Error).message.split("\n")[0]}`);
    return;
  }
  await makeMaildir(maildir);
  const mountedDevice = (await stat(maildir)).dev;
  for (const size of [100, LARGE]) {
    const receipt = await deliverVisible(store, maildir, size, "b");
    assert.equal((await stat(receipt.location)).dev, mountedDevice, "stored on the mounted file system");
  }
  for (const flushedThrough of [maildir, join(maildir, "new")]) {
    assert.deepEqual(await staleDescriptors(flushedThrough), [], "flushed through the mounted file system");
  }
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

test("syncfs: a Maildir deleted while serving is not recreated: deliveries fail until it is back", async (t) => {
  if (!(await syncfsAvailable(t))) return;
  const maildir = join(await tempDirectory(t), "Maildir");
  const store = await MaildirStore.open(maildir, { flush: "syncfs" });
  t.after(() => store.close());
  await deliverVisible(store, maildir, 100, "a");
  await rm(maildir, { recursive: true });
  await mkdir(maildir);
  for (const size of [100, LARGE]) {
    await assert.rejects(store.deliver(envelope, message(size, "b")), { code: "ENOENT" });
  }
  assert.deepEqual(await readdir(maildir), [], "the store made nothing in the new directory");
  await makeMaildir(maildir);
  for (const size of [100, LARGE]) await deliverVisible(store, maildir, size, "c");
  for (const flushedThrough of [maildir, join(maildir, "new")]) {
    assert.deepEqual(await staleDescriptors(flushedThrough), [], "flushed through the new one");
  }
});
