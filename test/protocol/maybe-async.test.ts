/** thenCall and isPromiseLike: plain values go on at once, thenables are waited for (src/protocol/maybe-async.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { isPromiseLike, thenCall } from "../../src/protocol/maybe-async.js";

test("isPromiseLike: objects and functions with a then method, nothing else", () => {
  const thenableFunction = Object.assign(() => {}, { then() {} });
  for (const value of [Promise.resolve(1), { then() {} }, thenableFunction])
    assert.equal(isPromiseLike(value), true);
  for (const value of [null, undefined, 0, "then", true, {}, { then: 1 }, () => {}, Symbol("x")]) {
    assert.equal(isPromiseLike(value), false, String(value));
  }
});

test("a plain value: next runs at once and its value is returned as it is", () => {
  const order: string[] = [];
  const result = thenCall(
    () => 2,
    (value) => {
      order.push("next");
      return value * 3;
    },
  );
  order.push("after");
  assert.equal(result, 6);
  assert.deepEqual(order, ["next", "after"]);
  assert.equal(
    thenCall(
      () => null,
      (value) => value,
    ),
    null,
  );
});

test("a promise or thenable: next runs once it settles, and a promise is returned", async () => {
  const result = thenCall(
    () => Promise.resolve(2),
    (value) => value * 3,
  );
  assert.ok(result instanceof Promise);
  assert.equal(await result, 6);
  const thenable = {
    then: (resolve: (value: number) => void) => resolve(5),
  } as unknown as PromiseLike<number>;
  assert.equal(
    await thenCall(
      () => thenable,
      (value) => value + 1,
    ),
    6,
  );
});

test("errors: a throw or a rejection goes to onError when given, else propagates", async () => {
  const boom = new Error("boom");
  assert.equal(
    thenCall(
      () => {
        throw boom;
      },
      () => "next",
      (error) => (error === boom ? "handled" : "wrong"),
    ),
    "handled",
  );
  assert.throws(
    () =>
      thenCall(
        () => {
          throw boom;
        },
        () => "next",
      ),
    boom,
  );
  assert.equal(
    await thenCall(
      () => Promise.reject(boom),
      () => "next",
      () => "handled",
    ),
    "handled",
  );
  await assert.rejects(
    async () =>
      thenCall(
        () => Promise.reject(boom),
        () => "next",
      ),
    boom,
  );
});
