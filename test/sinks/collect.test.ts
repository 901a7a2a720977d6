/**
 * The sinks' readers of a message (collect.ts), on the Readable that `mailgate serve` hands over (read
 * with read() rather than its async iterator) and on any other async iterable: the same bytes, the same
 * limit, the same errors.
 */
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import { SmtpError } from "../../src/index.js";
import { readUpTo, readWholeMessage } from "../../src/sinks/collect.js";

const parts = ["Subject: a\r\n", "\r\n", "body line\r\n"].map((text) => Buffer.from(text));
const whole = Buffer.concat(parts);

/** A Readable fed as the session feeds one: pushed chunk by chunk, over several turns. */
function fed(chunks: Buffer[], failWith?: Error): Readable {
  const stream = new Readable({ read() {} });
  let index = 0;
  const next = () => {
    if (index < chunks.length) {
      stream.push(chunks[index++]);
      setImmediate(next);
    } else if (failWith) stream.destroy(failWith);
    else stream.push(null);
  };
  setImmediate(next);
  return stream;
}

async function* iterable(chunks: Buffer[]): AsyncGenerator<Buffer> {
  yield* chunks;
}

for (const [kind, make] of [
  ["a Readable", (chunks: Buffer[]) => fed(chunks)],
  ["an async iterable", (chunks: Buffer[]) => iterable(chunks)],
] as const) {
  describe(`reading ${kind}`, () => {
    test("readWholeMessage returns every byte in order", async () => {
      assert.deepEqual(await readWholeMessage(make(parts), whole.length), whole);
    });

    test("readWholeMessage refuses a message over its limit with 552 5.3.4", async () => {
      await assert.rejects(
        readWholeMessage(make(parts), whole.length - 1, "the test's limit"),
        (error: unknown) =>
          error instanceof SmtpError && error.code === 552 && /the test's limit/.test(error.message),
      );
    });

    test("readUpTo returns a short message whole, without a rest", async () => {
      const head = await readUpTo(make(parts), whole.length);
      assert.equal(head.rest, null);
      assert.equal(head.size, whole.length);
      assert.deepEqual(Buffer.concat(head.chunks), whole);
    });

    test("readUpTo stops past its bound and the rest yields the remaining bytes", async () => {
      const head = await readUpTo(make(parts), 1);
      assert.ok(head.rest, "a rest");
      const read = [...head.chunks];
      for (let next = await head.rest.next(); !next.done; next = await head.rest.next())
        read.push(next.value);
      assert.ok(head.size > 1);
      assert.deepEqual(Buffer.concat(read), whole);
    });
  });
}

describe("reading a Readable that fails", () => {
  test("the session's error reaches the reader", async () => {
    const failure = new SmtpError(552, "too big");
    await assert.rejects(readWholeMessage(fed(parts, failure), 1000), (error) => error === failure);
    await assert.rejects(readUpTo(fed(parts, failure), 1000), (error) => error === failure);
  });

  test("a stream destroyed before its end is a premature close", async () => {
    const stream = fed([]);
    stream.destroy();
    await assert.rejects(readWholeMessage(stream, 1000), { code: "ERR_STREAM_PREMATURE_CLOSE" });
  });

  test("a message over the limit is released (destroyed), as leaving for-await releases it", async () => {
    const stream = fed(parts);
    await assert.rejects(readWholeMessage(stream, 1));
    assert.equal(stream.destroyed, true);
  });
});
