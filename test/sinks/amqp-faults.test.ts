/**
 * AmqpSink under faults, with load running: 20 SMTP clients send 2 KB messages through a sink whose
 * connection to RabbitMQ passes through a TcpProxy that the test cuts, stalls and restores. Afterwards every
 * message that got 250 is in the queue (at least once, byte-exact), nothing refused counts as accepted, and
 * no session waited past its deadline. Then the window: a stalled broker and 500 deliveries hold at most
 * the window's messages.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SmtpError } from "../../src/index.js";
import { waitFor } from "../helpers/clients.js";
import { assertQueueHoldsAccepted, drainQueue, proxiedSinkOrSkip } from "./amqp-broker.js";
import { message, runLoad } from "./sink-load.js";
import { startSinkServer } from "./sink-server.js";

const PUBLISH_TIMEOUT = 1000;
/** A reply must come within this: a wait for a slot and one for the confirm, plus slack for a busy machine. */
const SESSION_DEADLINE = 2 * PUBLISH_TIMEOUT + 6000;

async function* chunks(buffer: Buffer, onRead: () => void): AsyncGenerator<Buffer> {
  onRead();
  yield buffer;
}

describe("AmqpSink faults", () => {
  test("cut, stall and restore under load: every 250 is in the queue, no session hangs", async (t) => {
    const proxied = await proxiedSinkOrSkip(t, "faults", {
      publishTimeout: PUBLISH_TIMEOUT,
      window: 64,
      reconnectDelay: { min: 50, max: 300 },
    });
    if (!proxied) return;
    const { sink, proxy, channel, queue } = proxied;
    const port = await startSinkServer(t, sink);
    const load = runLoad(port, 20, 20_000, SESSION_DEADLINE);
    t.after(() => load.stop());
    const accepted = (more: number) => {
      const target = load.accepted.size + more;
      return () => load.accepted.size >= target;
    };
    const refused = (more: number) => {
      const target = load.refused + more;
      return () => load.refused >= target;
    };

    await waitFor(accepted(50), "50 messages accepted before any fault", 15_000);

    // Cut: the sink sees the connection go, answers 451 at once while it cannot reconnect.
    proxy.cut();
    await waitFor(() => sink.state !== "connected", "the sink to notice the cut", 5000);
    await waitFor(refused(20), "451s while the broker is cut off", 10_000);
    await assert.rejects(
      sink.deliver(
        { from: "", to: ["x@example.com"] },
        chunks(message("direct"), () => {}),
      ),
      (error: unknown) =>
        error instanceof SmtpError && error.code === 451 && /not connected/.test(error.message),
    );
    proxy.restore();
    await waitFor(() => sink.state === "connected", "the sink to reconnect", 10_000);
    await waitFor(accepted(50), "50 more accepted after the cut", 15_000);

    // Stall: the connection stays open but nothing moves; confirms do not come, deliveries get 451 after
    // publishTimeout, and the window stays bounded.
    proxy.stall();
    await waitFor(refused(20), "451s while the broker is stalled", 15_000);
    assert.ok(sink.peakInFlight <= 64, `at most the window in flight, saw ${sink.peakInFlight}`);
    proxy.restore();
    await waitFor(accepted(50), "50 more accepted after the stall", 15_000);
    await load.stop();

    assert.deepEqual(load.hung, [], "no session waited past its deadline");
    assert.deepEqual(load.other, [], "every reply was 250 or 451 4.3.0");
    const queued = await drainQueue(channel, queue);
    const copies = assertQueueHoldsAccepted(queued, load.accepted);
    t.diagnostic(
      `accepted ${load.accepted.size}, refused ${load.refused}, queued ${queued.length} (${queued.length - copies.size} duplicates by id, ${copies.size - load.accepted.size} ids that got 451 but reached the broker)`,
    );
  });

  test("a stalled broker and 500 deliveries: at most the window is read or held, all get 451", async (t) => {
    const window = 16;
    const proxied = await proxiedSinkOrSkip(t, "window", { publishTimeout: 500, window });
    if (!proxied) return;
    const { sink, proxy, channel, queue } = proxied;

    proxy.stall();
    let read = 0;
    const body = message("window");
    const outcomes = await Promise.allSettled(
      Array.from({ length: 500 }, (_, index) =>
        sink.deliver(
          { from: "a@example.org", to: ["b@example.com"], id: `window-${index}` },
          chunks(body, () => {
            read += 1;
          }),
        ),
      ),
    );
    const rejected = outcomes.filter(
      (outcome) =>
        outcome.status === "rejected" && outcome.reason instanceof SmtpError && outcome.reason.code === 451,
    );
    assert.equal(rejected.length, 500, "every delivery got 451 (publish timeout or no slot)");
    assert.equal(read, window, "only the deliveries in the window read their message");
    assert.equal(sink.peakInFlight, window);
    // The timed-out publishes keep their slots (their bytes may sit in the socket) until the broker answers.
    assert.equal(sink.inFlight, window);
    assert.equal(sink.heldBytes, window * body.length);

    proxy.restore();
    await waitFor(() => sink.inFlight === 0, "the stalled publishes to be confirmed", 10_000);
    assert.equal(sink.heldBytes, 0);
    // They got 451, yet reached the broker: at-least-once, recognisable by id.
    const queued = await drainQueue(channel, queue);
    assert.equal(queued.length, window);
  });
});
