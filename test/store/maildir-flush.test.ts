/**
 * How MaildirStore makes a message's bytes durable: one fsync per file, or one syncfs of the file system
 * shared by concurrent deliveries (group commit). The shared flush is injected here to pace and count it;
 * the real syncfs (through koffi) is checked too, and must be available in CI.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { setImmediate as tick } from "node:timers/promises";
import { MaildirStore, parseEnvelopeHeaders } from "../../src/store/maildir.js";
import { loadSyncfs } from "../../src/store/syncfs.js";

async function tempMaildir(t: TestContext): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), "mailgate-flush-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  return join(directory, "Maildir");
}

async function* bytes(text: string): AsyncGenerator<Buffer> {
  yield Buffer.from(text);
}

const envelope = { from: "a@x.test", to: ["b@y.test"] };

type PendingFlush = { finish: () => void; fail: (error: Error) => void };

/** A file-system flush that the test ends by hand, one call at a time. */
function manualFlush() {
  const pending: PendingFlush[] = [];
  let calls = 0;
  const flush = () =>
    new Promise<void>((resolve, reject) => {
      calls += 1;
      pending.push({ finish: resolve, fail: reject });
    });
  return { pending, flush, calls: () => calls };
}

/** Ends the pending flushes as they come (each with `end`) until `done` settles. */
async function endFlushesUntil(
  pending: PendingFlush[],
  done: Promise<unknown>,
  end: (flush: PendingFlush) => void = (flush) => flush.finish(),
): Promise<void> {
  let settled = false;
  const mark = () => {
    settled = true;
  };
  done.then(mark, mark);
  while (!settled) {
    const flush = pending.shift();
    if (flush) end(flush);
    await tick();
  }
}

test("syncfs: 100 concurrent deliveries share a few flushes, and none is in new/ before its flush", async (t) => {
  const maildir = await tempMaildir(t);
  const { pending, flush, calls } = manualFlush();
  const store = await MaildirStore.open(maildir, { syncFileSystem: flush });
  assert.equal(store.flush, "syncfs");
  const deliveries = Array.from({ length: 100 }, (_, i) =>
    store.deliver(envelope, bytes(`Subject: ${i}\r\n\r\nbody ${i}\r\n`)),
  );
  // Every file gets written, then waits for a flush: nothing may be visible in new/ yet.
  while (calls() === 0) await tick();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(await readdir(join(maildir, "new")), [], "no rename before the data flush");
  const all = Promise.all(deliveries);
  await endFlushesUntil(pending, all);
  const receipts = await all;
  assert.ok(calls() >= 1 && calls() <= 10, `${calls()} flushes for 100 deliveries`);
  assert.equal((await readdir(join(maildir, "new"))).length, 100);
  assert.deepEqual(await readdir(join(maildir, "tmp")), []);
  for (const [i, receipt] of receipts.entries()) {
    const stored = await readFile(receipt.location);
    const { bodyOffset } = parseEnvelopeHeaders(stored);
    assert.equal(stored.subarray(bodyOffset).toString(), `Subject: ${i}\r\n\r\nbody ${i}\r\n`);
  }
});

test("syncfs: a failed flush fails every delivery that waited for it, leaves nothing, and the next one works", async (t) => {
  const maildir = await tempMaildir(t);
  const { pending, flush } = manualFlush();
  const store = await MaildirStore.open(maildir, { syncFileSystem: flush });
  const waiting = Array.from({ length: 5 }, (_, i) =>
    store.deliver(envelope, bytes(`Subject: ${i}\r\n\r\nx\r\n`)),
  );
  while (pending.length === 0) await tick();
  await new Promise((resolve) => setTimeout(resolve, 20)); // all five wrote and wait for the flush
  const failure = new Error("syncfs failed: the file system reported a write error");
  // The first flush may have started before the last writes: those wait for a second one, failed too.
  const all = Promise.allSettled(waiting);
  await endFlushesUntil(pending, all, (flush) => flush.fail(failure));
  const outcomes = await all;
  assert.deepEqual(
    outcomes.map((outcome) => outcome.status),
    ["rejected", "rejected", "rejected", "rejected", "rejected"],
  );
  assert.deepEqual(await readdir(join(maildir, "new")), []);
  assert.deepEqual(await readdir(join(maildir, "tmp")), []);
  const next = store.deliver(envelope, bytes("Subject: again\r\n\r\nx\r\n"));
  await endFlushesUntil(pending, next);
  await next;
  assert.equal((await readdir(join(maildir, "new"))).length, 1);
});

test("flush fsync never uses syncfs; an unknown flush is refused", async (t) => {
  const maildir = await tempMaildir(t);
  const store = await MaildirStore.open(maildir, { flush: "fsync" });
  assert.equal(store.flush, "fsync");
  await store.deliver(envelope, bytes("Subject: fsync\r\n\r\nx\r\n"));
  assert.equal((await readdir(join(maildir, "new"))).length, 1);
  await assert.rejects(MaildirStore.open(maildir, { flush: "sometimes" as "auto" }), {
    name: "TypeError",
    message: 'Invalid Maildir flush "sometimes"; use one of: auto, fsync, syncfs.',
  });
});

test("the real syncfs: auto uses it where it can be called, and a delivery through it is stored", async (t) => {
  const syncfs = await loadSyncfs();
  const maildir = await tempMaildir(t);
  if (typeof syncfs === "string") {
    // On Linux 5.8+ with npm ci's optional koffi, as in CI, syncfs must work: its absence is a failure there.
    assert.ok(!process.env.CI, `syncfs must be available in CI: ${syncfs}`);
    t.diagnostic(`syncfs unavailable here (${syncfs}): checking the fallback only`);
    assert.equal((await MaildirStore.open(maildir)).flush, "fsync");
    await assert.rejects(MaildirStore.open(maildir, { flush: "syncfs" }), {
      message: `Cannot flush the Maildir with syncfs: ${syncfs}.`,
    });
    return;
  }
  const store = await MaildirStore.open(maildir);
  assert.equal(store.flush, "syncfs");
  const receipt = await store.deliver(envelope, bytes("Subject: real\r\n\r\nflushed\r\n"));
  const stored = await readFile(receipt.location);
  assert.equal(
    stored.subarray(parseEnvelopeHeaders(stored).bodyOffset).toString(),
    "Subject: real\r\n\r\nflushed\r\n",
  );
  await store.close();
  await store.close(); // twice is harmless
});
