/**
 * InFlightWindow (src/sinks/window.ts): places counted one per holder or by weight (bytes), first come
 * first served, a waiter leaving on its signal's abort.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InFlightWindow } from "../../src/sinks/window.js";

const never = new AbortController().signal;

/** `entering`, noting its name in `order` when it enters. */
function noted(order: string[], name: string, entering: Promise<() => void>): Promise<() => void> {
  return entering.then((leave) => {
    order.push(name);
    return leave;
  });
}

test("one place per holder: the others wait in order", async () => {
  const window = new InFlightWindow(2);
  const a = window.tryEnter();
  const b = window.tryEnter();
  assert.ok(a && b);
  assert.equal(window.tryEnter(), undefined);
  const order: string[] = [];
  const c = noted(order, "c", window.enter(never));
  const d = noted(order, "d", window.enter(never));
  a();
  a(); // a place is given back once
  (await c)();
  b();
  (await d)();
  assert.deepEqual(order, ["c", "d"]);
  assert.equal(window.inFlight, 0);
});

test("by weight: a light holder never passes a heavy one waiting; one heavier than the window goes alone", async () => {
  const window = new InFlightWindow(100);
  const first = window.tryEnter(60);
  assert.ok(first);
  assert.equal(window.inFlight, 60);
  const order: string[] = [];
  const heavy = noted(order, "heavy", window.enter(never, 50));
  // 30 would fit beside the 60, but the heavy one came first.
  assert.equal(window.tryEnter(30), undefined);
  const light = noted(order, "light", window.enter(never, 30));
  first();
  const leaveHeavy = await heavy;
  const leaveLight = await light;
  assert.deepEqual(order, ["heavy", "light"]);
  assert.equal(window.inFlight, 80);
  leaveHeavy();
  leaveLight();
  const huge = window.tryEnter(500);
  assert.ok(huge, "one heavier than the window enters when it is empty");
  assert.equal(window.tryEnter(1), undefined);
  huge();
  assert.equal(window.inFlight, 0);
});

test("a waiter whose signal aborts leaves the line, and the one behind it may enter", async () => {
  const window = new InFlightWindow(100);
  const held = window.tryEnter(70);
  assert.ok(held);
  const controller = new AbortController();
  const heavy = window.enter(controller.signal, 50);
  const light = window.enter(never, 20);
  controller.abort(new Error("timed out"));
  await assert.rejects(heavy, /timed out/);
  (await light)();
  held();
  assert.equal(window.inFlight, 0);
  assert.equal(window.waiting, 0);
});
