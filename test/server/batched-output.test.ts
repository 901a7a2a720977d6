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
