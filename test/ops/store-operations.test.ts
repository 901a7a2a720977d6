/**
 * What `mailgate serve` reads of its store for operations, with any store: the timed wrapper is the store
 * it wraps (size limit, state, depth, readiness, close) and times deliveries that succeed and fail;
 * readiness follows checkReady, else a sink's state; the metrics publish the state and depth.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ServeMetrics } from "../../src/ops/metrics.js";
import { READINESS_TIMEOUT_MS, readinessCheck } from "../../src/ops/readiness.js";
import { timedStore } from "../../src/ops/timed-store.js";
import type { DeliveryReceipt, MessageStore, StoreEnvelope } from "../../src/store/store.js";

/** A sink as the broker sinks look from outside: a state, a depth, deliveries that wait or fail. */
class FakeSink implements MessageStore {
  state = "connecting";
  depth = 0;
  readonly maxMessageSize = 4096;
  closed = false;
  fail = false;
  async deliver(envelope: StoreEnvelope, message: AsyncIterable<Buffer>): Promise<DeliveryReceipt> {
    let size = 0;
    for await (const chunk of message) size += chunk.length;
    await new Promise((resolve) => setTimeout(resolve, 20));
    if (this.fail) throw new Error("not connected to the broker");
    return { id: envelope.id ?? "x", location: "queue", size };
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

async function* bytes(text: string): AsyncGenerator<Buffer> {
  yield Buffer.from(text);
}

const listening = { addresses: ["127.0.0.1:2525"], isShuttingDown: false, isStopped: false };

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test("the timed store is the store it wraps, and times each delivery by outcome", async () => {
  const sink = new FakeSink();
  const timings: [number, boolean][] = [];
  const timed = timedStore(sink, (seconds, stored) => timings.push([seconds, stored]));
  assert.equal(timed.maxMessageSize, 4096);
  assert.equal(timed.state, "connecting");
  sink.state = "connected";
  sink.depth = 3;
  assert.equal(timed.state, "connected");
  assert.equal(timed.depth, 3);
  assert.equal(timed.checkReady, undefined, "no check of its own: readiness reads the state");
  const receipt = await timed.deliver({ from: "a@x.test", to: ["b@y.test"], id: "ID1" }, bytes("hello"));
  assert.deepEqual(receipt, { id: "ID1", location: "queue", size: 5 });
  sink.fail = true;
  await assert.rejects(timed.deliver({ from: "", to: ["b@y.test"] }, bytes("x")), /not connected/);
  assert.deepEqual(
    timings.map(([, stored]) => stored),
    [true, false],
  );
  for (const [seconds] of timings) assert.ok(seconds >= 0.015 && seconds < 5, `${seconds} s`);
  await timed.close?.();
  assert.ok(sink.closed);
});

test("readiness: a sink is ready only while connected; a store's own check decides over its state", async () => {
  const sink = new FakeSink();
  const ready = readinessCheck(listening, sink);
  assert.equal(await ready(), "the sink is connecting");
  sink.state = "connected";
  assert.equal(await ready(), null);
  const checked: MessageStore = Object.assign(new FakeSink(), {
    checkReady: () => Promise.reject(new Error('Cannot use Maildir "/m": EROFS')),
  });
  assert.equal(await readinessCheck(listening, checked)(), 'Cannot use Maildir "/m": EROFS');
  assert.equal(
    await readinessCheck({ ...listening, isShuttingDown: true }, sink)(),
    "the server is stopping",
  );
  assert.equal(
    await readinessCheck({ addresses: [], isShuttingDown: false, isStopped: true }, sink)(),
    "the server is not listening",
  );
});

test("readiness: a check that never answers is unready after the timeout, and probes meanwhile share it", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let checks = 0;
  const hanging: MessageStore = Object.assign(new FakeSink(), {
    checkReady: () => {
      checks++;
      return new Promise<void>(() => {});
    },
  });
  const ready = readinessCheck(listening, hanging);
  const probes = [ready(), ready(), ready()];
  await Promise.resolve();
  t.mock.timers.tick(READINESS_TIMEOUT_MS);
  for (const reason of await Promise.all(probes)) {
    assert.equal(reason, `the store did not answer its check within ${READINESS_TIMEOUT_MS} ms`);
  }
  assert.equal(checks, 1);
});

test("the metrics publish a sink's state and depth, and the store's latency", async () => {
  const sink = new FakeSink();
  const metrics = new ServeMetrics();
  metrics.watchStore(sink);
  metrics.storeTook(0.003, true);
  metrics.storeTook(0.2, false);
  let text = await metrics.render();
  assert.equal(sample(text, 'mailgate_store_state{state="connecting"}'), 1);
  assert.equal(sample(text, "mailgate_store_depth"), 0);
  assert.equal(sample(text, 'mailgate_store_duration_seconds_bucket{le="0.005",outcome="stored"}'), 1);
  assert.equal(sample(text, 'mailgate_store_duration_seconds_count{outcome="failed"}'), 1);
  sink.state = "connected";
  sink.depth = 7;
  text = await metrics.render();
  assert.equal(sample(text, 'mailgate_store_state{state="connected"}'), 1);
  assert.equal(sample(text, 'mailgate_store_state{state="connecting"}'), undefined, "only the current state");
  assert.equal(sample(text, "mailgate_store_depth"), 7);
});

test("a store without state or depth has neither metric", async () => {
  const metrics = new ServeMetrics();
  metrics.watchStore({ deliver: () => Promise.reject(new Error("unused")) });
  const text = await metrics.render();
  assert.doesNotMatch(text, /mailgate_store_state|mailgate_store_depth/);
});
