/** thenCall and isPromiseLike: plain values go on at once, thenables are waited for (src/protocol/maybe-async.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { isPromiseLike, thenCall } from "../../src/protocol/maybe-async.js";

/** A thenable that is not a promise, built on purpose: what thenCall must wait for besides promises. */
function thenable<T>(value: T): PromiseLike<T> {
  const then = (resolve: (settled: T) => void) => resolve(value);
  // biome-ignore lint/suspicious/noThenProperty: a thenable is what this test is about
  return Object.fromEntries([["then", then]]) as unknown as PromiseLike<T>;
}

test("isPromiseLike: objects and functions with a then method, nothing else", () => {
  // biome-ignore lint/suspicious/noThenProperty: a thenable is what this test is about
  const thenableFunction = Object.assign(() => {}, Object.fromEntries([["then", () => {}]]));
  for (const value of [Promise.resolve(1), thenable(1), thenableFunction]) {
    assert.equal(isPromiseLike(value), true);
  }
  // biome-ignore lint/suspicious/noThenProperty: a thenable is what this test is about
  const notCallable = Object.fromEntries([["then", 1]]);
  for (const value of [null, undefined, 0, "then", true, {}, notCallable, () => {}, Symbol("x")]) {
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
  assert.equal(
    await thenCall(
      () => thenable(5),
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
