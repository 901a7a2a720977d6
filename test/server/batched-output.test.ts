import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { BatchedOutput } from "../../src/server/batched-output.js";

function recorder(): { writes: string[]; write(text: string): boolean } {
  const writes: string[] = [];
  return {
    writes,
    write(text: string) {
      writes.push(text);
      return true;
    },
  };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

test("the lines of one turn are written together at its end, in order", async () => {
  const stream = recorder();
  const output = new BatchedOutput(stream);
  output.write("one\n");
  output.write("two\n");
  output.write("three\n");
  assert.deepEqual(stream.writes, [], "nothing is written during the turn");
  await nextTurn();
  assert.deepEqual(stream.writes, ["one\ntwo\nthree\n"]);
  output.write("four\n");
  await nextTurn();
  assert.deepEqual(stream.writes, ["one\ntwo\nthree\n", "four\n"]);
});

test("no write exceeds PIPE_BUF (4096 bytes), so lines from several processes never interleave", async () => {
  const stream = recorder();
  const output = new BatchedOutput(stream);
  const line = `${"é".repeat(99)}\n`; // 199 bytes in UTF-8, 100 characters
  for (let i = 0; i < 100; i++) output.write(line);
  await nextTurn();
  assert.ok(stream.writes.length > 1);
  for (const text of stream.writes) {
    assert.ok(Buffer.byteLength(text) <= 4096, `${Buffer.byteLength(text)} bytes in one write`);
    assert.ok(text.endsWith("\n"), "every write holds whole lines");
  }
  assert.equal(stream.writes.join(""), line.repeat(100));
});

test("what is queued is written when the process exits, even on an uncaught exception", () => {
  const module = new URL("../../src/server/batched-output.js", import.meta.url).href;
  const child = spawnSync(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { batchedStdout } from ${JSON.stringify(module)};
       batchedStdout().write("last words\\n");
       throw new Error("boom");`,
    ],
    { encoding: "utf8", timeout: 10_000 },
  );
  assert.equal(child.status, 1);
  assert.equal(child.stdout, "last words\n");
  assert.match(child.stderr, /boom/);
});

test("flush(done) calls done once written (pino's flush)", () => {
  const stream = recorder();
  const output = new BatchedOutput(stream);
  output.write("a\n");
  let called = 0;
  output.flush(() => called++);
  assert.deepEqual(stream.writes, ["a\n"]);
  assert.equal(called, 1);
  output.flush(() => called++);
  assert.equal(called, 2, "also when nothing is queued");
});

test("the last lines come before an uncaught exception's report when stdout and stderr are one", () => {
  const module = new URL("../../src/server/batched-output.js", import.meta.url).href;
  const script = `import { batchedStdout } from ${JSON.stringify(module)};
    batchedStdout().write("last words\\n");
    process.nextTick(() => {
      throw new Error("boom"); // before the turn ends, so before the queued line would be written
    });`;
  const child = spawnSync("/bin/sh", ["-c", `"${process.execPath}" --input-type=module -e "$SCRIPT" 2>&1`], {
    encoding: "utf8",
    timeout: 10_000,
    env: { ...process.env, SCRIPT: script },
  });
  assert.ok(child.stdout.indexOf("last words") !== -1, child.stdout);
  assert.ok(child.stdout.indexOf("last words") < child.stdout.indexOf("boom"), child.stdout);
});

test("a stdout whose reader is gone (EPIPE) stops the log, not the process", () => {
  const module = new URL("../../src/server/batched-output.js", import.meta.url).href;
  // The reader (head) exits after one line; the writer goes on for a while and must exit normally.
  const script = `import { batchedStdout } from ${JSON.stringify(module)};
    let n = 0;
    const timer = setInterval(() => {
      for (let i = 0; i < 200; i++) batchedStdout().write("line " + n++ + "\\n");
      if (n >= 20000) { clearInterval(timer); console.error("still alive"); }
    }, 1);`;
  const child = spawnSync(
    "/bin/sh",
    ["-c", `"${process.execPath}" --input-type=module -e "$SCRIPT" | head -n 1`],
    { encoding: "utf8", timeout: 20_000, env: { ...process.env, SCRIPT: script } },
  );
  assert.match(child.stdout, /^line 0\n/);
  assert.match(child.stderr, /still alive/, child.stderr);
  assert.match(child.stderr, /stdout failed \(.*EPIPE.*\); the log is no longer written/, child.stderr);
});
