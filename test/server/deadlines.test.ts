/**
 * The deadline queue behind the connections' timeouts: items come due in time order, not before their
 * time, each once; moving and cancelling work anywhere in the heap; one throwing item does not stop the
 * others; and the timer goes away when the queue empties.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type Deadline, DeadlineQueue } from "../../src/server/deadlines.js";

class Item implements Deadline {
  queueIndex = -1;
  dueAt = 0;
  constructor(
    readonly name: string,
    private readonly fired: { name: string; at: number; late: number }[],
    private readonly onFire?: (item: Item) => void,
  ) {}
  onDue(): void {
    const now = Date.now();
    this.fired.push({ name: this.name, at: now, late: now - this.dueAt });
    this.onFire?.(this);
  }
}

function schedule(queue: DeadlineQueue<Item>, item: Item, inMs: number): void {
  item.dueAt = Date.now() + inMs;
  queue.schedule(item, item.dueAt);
}

test("items come due in time order, never early, each once", async () => {
  const queue = new DeadlineQueue<Item>();
  const fired: { name: string; at: number; late: number }[] = [];
  const delays = [60, 10, 40, 30, 0, 50, 20];
  for (const [i, delay] of delays.entries()) schedule(queue, new Item(`i${i}`, fired), delay);
  assert.equal(queue.size, delays.length);
  await sleep(150);
  assert.equal(queue.size, 0);
  // In the order of their due times (not of their delays: on a busy machine scheduling the seven may take
  // longer than the 10 ms between two delays, and the later-scheduled one is then due first).
  const due = fired.map((f) => f.at - f.late);
  assert.deepEqual(
    due,
    [...due].sort((a, b) => a - b),
    `fired in due-time order: ${fired.map((f) => f.name)}`,
  );
  assert.deepEqual(fired.map((f) => f.name).sort(), delays.map((_, i) => `i${i}`).sort(), "each once");
  for (const f of fired) assert.ok(f.late >= 0, `${f.name} came ${-f.late} ms early`);
});

test("moving an item later or earlier, and cancelling, anywhere in the heap", async () => {
  const queue = new DeadlineQueue<Item>();
  const fired: { name: string; at: number; late: number }[] = [];
  const items = Array.from({ length: 200 }, (_, i) => new Item(`i${i}`, fired));
  for (const [i, item] of items.entries()) schedule(queue, item, 30 + (i % 17));
  for (const [i, item] of items.entries()) {
    if (i % 3 === 0) queue.cancel(item);
    else if (i % 3 === 1)
      schedule(queue, item, 60 + (i % 5)); // later
    else schedule(queue, item, 5 + (i % 7)); // earlier
  }
  queue.cancel(items[0] as Item); // cancelling twice is harmless
  assert.equal(queue.size, 133);
  await sleep(120);
  assert.equal(queue.size, 0);
  assert.equal(fired.length, 133);
  assert.equal(new Set(fired.map((f) => f.name)).size, 133);
  for (const f of fired) {
    assert.ok(f.late >= 0, `${f.name} came ${-f.late} ms early`);
    assert.notEqual(Number(f.name.slice(1)) % 3, 0, `${f.name} was cancelled`);
  }
  const times = fired.map((f) => f.at);
  assert.deepEqual(
    times,
    [...times].sort((a, b) => a - b),
  );
});

test("an item due again is served again; one that throws does not hold the others back", async (t) => {
  const queue = new DeadlineQueue<Item>();
  const fired: { name: string; at: number; late: number }[] = [];
  let rounds = 0;
  const again = new Item("again", fired, (item) => {
    if (++rounds < 3) schedule(queue, item, 5);
  });
  const thrower = new Item("thrower", fired, () => {
    throw new Error("boom");
  });
  const errors: unknown[] = [];
  const listeners = process.listeners("uncaughtException");
  process.removeAllListeners("uncaughtException");
  const onError = (error: unknown) => errors.push(error);
  process.on("uncaughtException", onError);
  t.after(() => {
    process.off("uncaughtException", onError);
    for (const listener of listeners) process.on("uncaughtException", listener);
  });
  schedule(queue, again, 5);
  schedule(queue, thrower, 5);
  for (let i = 0; i < 5; i++) schedule(queue, new Item(`later${i}`, fired), 6);
  await sleep(80);
  assert.equal(errors.length, 1);
  assert.equal(fired.filter((f) => f.name === "again").length, 3);
  assert.equal(fired.filter((f) => f.name.startsWith("later")).length, 5);
  assert.equal(queue.size, 0);
});

test("the timer goes once the queue is empty, so it keeps no process alive", () => {
  const queue = new DeadlineQueue<Item>();
  const items = Array.from({ length: 3 }, (_, i) => new Item(`i${i}`, []));
  for (const item of items) schedule(queue, item, 60_000);
  const timer = () => (queue as unknown as { timer: NodeJS.Timeout | undefined }).timer;
  assert.ok(timer()?.hasRef());
  for (const item of items) queue.cancel(item);
  assert.equal(timer(), undefined);
});
