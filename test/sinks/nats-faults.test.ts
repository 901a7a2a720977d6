/**
 * NatsSink under faults, with load running: 20 SMTP clients send 2 KB messages through a sink whose
 * connection passes through a TcpProxy that the test cuts, stalls and restores; a private nats-server that
 * crashes and comes back; a stream that fills up. Afterwards every message that got 250 is in the stream
 * (at least once, byte-exact), nothing refused counts as accepted, and no session waited past its
 * deadline. Then the window: a stalled server and 500 deliveries read at most the window's messages.
 */
import assert from "node:assert/strict";
import { describe, type TestContext, test } from "node:test";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { NatsSink, readNatsMailHeaders, SinkUnavailable, SmtpError } from "../../src/index.js";
import { silentLogger, waitFor } from "../helpers/clients.js";
import { TcpProxy } from "../helpers/tcp-proxy.js";
import {
  NATS_PORT,
  NATS_URL,
  natsOrSkip,
  readStream,
  startPrivateNats,
  uniqueStream,
} from "./nats-broker.js";
import { type Load, message, runLoad } from "./sink-load.js";
import { startSinkServer } from "./sink-server.js";

const PUBLISH_TIMEOUT = 1000;
/** A reply must come within this: a wait for a slot and one for the PubAck, plus slack for a busy machine. */
const SESSION_DEADLINE = 2 * PUBLISH_TIMEOUT + 6000;

async function* chunks(buffer: Buffer, onRead: () => void): AsyncGenerator<Buffer> {
  onRead();
  yield buffer;
}

function more(load: Load, what: "accepted" | "refused", count: number): () => boolean {
  const size = () => (what === "accepted" ? load.accepted.size : load.refused);
  const target = size() + count;
  return () => size() >= target;
}

/** Every message that got 250 is in the stream, byte-exact; reports the counts. */
async function assertEveryAcceptedStored(
  t: TestContext,
  jsm: JetStreamManager,
  stream: string,
  load: Load,
): Promise<void> {
  assert.deepEqual(load.hung, [], "no session waited past its deadline");
  assert.deepEqual(load.other, [], "every reply was 250 or 451 4.3.0");
  const stored = await readStream(jsm, stream);
  const copies = new Map<string, number>();
  for (const received of stored) {
    const { id } = readNatsMailHeaders((name) => received.header?.get(name) || undefined);
    copies.set(id, (copies.get(id) ?? 0) + 1);
    const sent = load.accepted.get(id);
    if (sent) assert.deepEqual(Buffer.from(received.data), sent, `message ${id} byte-exact`);
  }
  const missing = [...load.accepted.keys()].filter((id) => !copies.has(id));
  assert.deepEqual(missing, [], "every message that got 250 is in the stream");
  t.diagnostic(
    `accepted ${load.accepted.size}, answered 451 ${load.refused}, stored ${stored.length} (${stored.length - copies.size} duplicates by id, ${copies.size - load.accepted.size} ids that got 451 but reached the stream)`,
  );
}

describe("NatsSink faults", () => {
  test("cut, stall and restore under load: every 250 is in the stream, no session hangs", async (t) => {
    const nats = await natsOrSkip(t);
    if (!nats) return;
    const names = uniqueStream(t, "faults");
    const proxy = await TcpProxy.start(NATS_PORT);
    t.after(() => proxy.close());
    const sink = await NatsSink.open({
      servers: `nats://127.0.0.1:${proxy.port}`,
      subject: names.subject,
      bucket: null,
      declare: { stream: names.stream },
      publishTimeout: PUBLISH_TIMEOUT,
      window: 64,
      reconnectDelay: { min: 50, max: 300 },
      logger: silentLogger,
    });
    t.after(() => sink.close());
    const port = await startSinkServer(t, sink);
    const load = runLoad(port, 20, 20_000, SESSION_DEADLINE);
    t.after(() => load.stop());

    await waitFor(more(load, "accepted", 50), "50 messages accepted before any fault", 15_000);

    // Cut: nats.js sees the connection go; the sink answers 451 at once until nats.js reconnects.
    proxy.cut();
    await waitFor(() => sink.state !== "connected", "the sink to notice the cut", 5000);
    await waitFor(more(load, "refused", 20), "451s while the server is cut off", 10_000);
    await assert.rejects(
      sink.deliver(
        { from: "", to: ["x@example.com"] },
        chunks(message("direct"), () => {}),
      ),
      (error: unknown) => error instanceof SinkUnavailable && /not connected/.test(error.message),
    );
    proxy.restore();
    await waitFor(() => sink.state === "connected", "the sink to reconnect", 10_000);
    await waitFor(more(load, "accepted", 50), "50 more accepted after the cut", 15_000);

    // Stall: the connection stays open but nothing moves; PubAcks do not come, deliveries get 451 after
    // publishTimeout, then at once until the server answers a PING again.
    proxy.stall();
    await waitFor(more(load, "refused", 20), "451s while the server is stalled", 15_000);
    assert.ok(sink.peakInFlight <= 64, `at most the window in flight, saw ${sink.peakInFlight}`);
    proxy.restore();
    await waitFor(more(load, "accepted", 50), "50 more accepted after the stall", 15_000);
    await load.stop();

    await assertEveryAcceptedStored(t, nats.jsm, names.stream, load);
  });

  test("a private nats-server crashes and restarts under load: every 250 survived it", async (t) => {
    const server = await startPrivateNats(t);
    if (!server) return;
    const sink = await NatsSink.open({
      servers: server.url,
      subject: "crash.{domain}",
      bucket: null,
      declare: { stream: "CRASH" },
      publishTimeout: PUBLISH_TIMEOUT,
      window: 64,
      reconnectDelay: { min: 50, max: 300 },
      logger: silentLogger,
    });
    t.after(() => sink.close());
    const port = await startSinkServer(t, sink);
    const load = runLoad(port, 20, 20_000, SESSION_DEADLINE);
    t.after(() => load.stop());

    await waitFor(more(load, "accepted", 100), "100 messages accepted before the crash", 15_000);
    await server.kill();
    await waitFor(() => sink.state !== "connected", "the sink to notice the crash", 5000);
    await waitFor(more(load, "refused", 20), "451s while the server is down", 10_000);
    await server.restart();
    await waitFor(() => sink.state === "connected", "the sink to reconnect", 15_000);
    await waitFor(more(load, "accepted", 100), "100 more accepted after the restart", 20_000);
    await load.stop();

    const nc = await connect({ servers: server.url, reconnect: false });
    t.after(() => nc.close());
    await assertEveryAcceptedStored(t, await jetstreamManager(nc), "CRASH", load);
  });

  test("a stream that fills up under load: refusals (451, not spooled), and every 250 stored", async (t) => {
    const nats = await natsOrSkip(t);
    if (!nats) return;
    const names = uniqueStream(t, "fills");
    const capacity = 300;
    const sink = await NatsSink.open({
      servers: NATS_URL,
      subject: names.subject,
      bucket: null,
      declare: { stream: names.stream, maxMsgs: capacity },
      publishTimeout: PUBLISH_TIMEOUT,
      logger: silentLogger,
    });
    t.after(() => sink.close());
    const port = await startSinkServer(t, sink);
    const load = runLoad(port, 20, 20_000, SESSION_DEADLINE);
    t.after(() => load.stop());
    await waitFor(() => load.refused >= 50, "refusals once the stream is full", 20_000);
    await load.stop();

    assert.ok(load.accepted.size <= capacity, `no more 250s than the stream holds (${load.accepted.size})`);
    await assert.rejects(
      sink.deliver(
        { from: "", to: ["x@example.com"], id: "after-full" },
        chunks(message("direct"), () => {}),
      ),
      (error: unknown) =>
        error instanceof SmtpError &&
        !(error instanceof SinkUnavailable) &&
        /maximum messages/.test(error.message),
    );
    assert.equal(sink.state, "connected");
    await assertEveryAcceptedStored(t, nats.jsm, names.stream, load);
  });

  test("a stalled server and 500 deliveries: at most the window is read, all get 451", async (t) => {
    const nats = await natsOrSkip(t);
    if (!nats) return;
    const names = uniqueStream(t, "window");
    const proxy = await TcpProxy.start(NATS_PORT);
    t.after(() => proxy.close());
    const window = 16;
    const sink = await NatsSink.open({
      servers: `nats://127.0.0.1:${proxy.port}`,
      subject: names.subject,
      bucket: null,
      declare: { stream: names.stream },
      publishTimeout: 500,
      window,
      logger: silentLogger,
    });
    t.after(() => sink.close());

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
    const unavailable = outcomes.filter(
      (outcome) => outcome.status === "rejected" && outcome.reason instanceof SinkUnavailable,
    );
    assert.equal(unavailable.length, 500, "every delivery got 451 (no PubAck, no slot, or not answering)");
    assert.equal(read, window, "only the deliveries in the window read their message");
    assert.equal(sink.peakInFlight, window);
    assert.equal(sink.heldBytes, 0, "a timed-out publish lets go of its bytes");

    // Until the server answers a PING, nothing new is read: the stalled socket holds the window at most.
    await assert.rejects(
      sink.deliver(
        { from: "a@example.org", to: ["b@example.com"], id: "window-late" },
        chunks(body, () => {
          read += 1;
        }),
      ),
      (error: unknown) => error instanceof SinkUnavailable && /has not answered/.test(error.message),
    );
    assert.equal(read, window);

    proxy.restore();
    await waitFor(() => sink.state === "connected", "the server to answer again", 10_000);
    await sink.deliver(
      { from: "a@example.org", to: ["b@example.com"], id: "window-after" },
      chunks(body, () => {}),
    );
    // The timed-out publishes left in the stalled socket reached the stream: at-least-once, by id.
    const stored = await readStream(nats.jsm, names.stream);
    assert.equal(stored.length, window + 1);
  });
});
