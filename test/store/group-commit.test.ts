import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { setImmediate as tick } from "node:timers/promises";
import { fsyncDirectory, GroupCommit } from "../../src/store/group-commit.js";

/** An fsync whose calls the test finishes by hand, one by one. */
function manualFsync() {
  const calls: { finish: () => void; fail: (error: Error) => void }[] = [];
  const fsync = () =>
    new Promise<void>((resolve, reject) => {
      calls.push({ finish: resolve, fail: reject });
    });
  return { calls, fsync };
}

test("concurrent callers share fsyncs: 100 callers during one fsync cost one more", async () => {
  const { calls, fsync } = manualFsync();
  const sync = new GroupCommit(fsync);
  const first = sync.sync();
  const rest = Array.from({ length: 100 }, () => sync.sync());
  assert.equal(calls.length, 1);
  calls[0].finish();
  await first;
  await tick();
  assert.equal(calls.length, 2, "the waiting callers' fsync starts when the first ends");
  calls[1].finish();
  await Promise.all(rest);
  assert.equal(calls.length, 2);
});

test("a caller never resolves on an fsync that started before its call", async () => {
  const { calls, fsync } = manualFsync();
  const sync = new GroupCommit(fsync);
  const settled: string[] = [];
  const a = sync.sync().then(() => settled.push("a"));
  const b = sync.sync().then(() => settled.push("b"));
  calls[0].finish();
  await a;
  await tick();
  assert.deepEqual(settled, ["a"]);
  assert.equal(calls.length, 2);
  // c calls while b's fsync is in flight, so it needs a third.
  const c = sync.sync().then(() => settled.push("c"));
  calls[1].finish();
  await b;
  await tick();
  assert.deepEqual(settled, ["a", "b"]);
  assert.equal(calls.length, 3);
  calls[2].finish();
  await c;
  assert.deepEqual(settled, ["a", "b", "c"]);
});

test("a failed fsync rejects its own callers only, and syncing goes on", async () => {
  const { calls, fsync } = manualFsync();
  const sync = new GroupCommit(fsync);
  const a = sync.sync();
  const b = sync.sync();
  const failure = new Error("EIO");
  calls[0].fail(failure);
  await assert.rejects(a, failure);
  await tick();
  calls[1].finish();
  await b;
  const c = sync.sync();
  assert.equal(calls.length, 3);
  calls[2].finish();
  await c;
});

test("under random timing, every caller resolves after an fsync that started after its call", async () => {
  let started = 0;
  let finished = 0;
  const sync = new GroupCommit(async () => {
    assert.equal(started, finished, "fsyncs never overlap");
    started += 1;
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
    finished += 1;
  });
  const callers = Array.from({ length: 300 }, async () => {
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 30));
    const startedBeforeCall = started;
    await sync.sync();
    // fsyncs never overlap, so the one numbered startedBeforeCall + 1 must have finished.
    assert.ok(finished > startedBeforeCall, `${finished} fsyncs done, ${startedBeforeCall} began before`);
  });
  await Promise.all(callers);
  assert.ok(started < 300, `${started} fsyncs for 300 callers`);
});

test("fsyncDirectory works on a real directory, as a group commit's flush", async () => {
  const directory = await mkdtemp(join(tmpdir(), "mailgate-dirsync-"));
  try {
    await new GroupCommit(() => fsyncDirectory(directory)).sync();
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});
