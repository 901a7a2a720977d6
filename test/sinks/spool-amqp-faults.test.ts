/**
 * SinkSpool in front of AmqpSink against the real RabbitMQ, the connection through a TcpProxy: under load
 * the test cuts, stalls and restores the broker; the messages the broker could not take are spooled
 * (250) and forwarded once it is back. At the end every message that got a 250 is in the queue at least
 * once, byte-exact, under its id. A message the broker refuses (unroutable) gets its 451 and is not
 * spooled.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AmqpSink } from "../../src/index.js";
import { silentLogger, waitFor } from "../helpers/clients.js";
import {
  assertQueueHoldsAccepted,
  BROKER_URL,
  brokerOrSkip,
  cleanUpAfter,
  drainQueue,
  proxiedSinkOrSkip,
} from "./amqp-broker.js";
import { message, runLoad } from "./sink-load.js";
import { ehloClient, queuedId, sendOne, startSinkServer, uniqueName } from "./sink-server.js";
import { keptLogger, spoolFixture, spoolProgress } from "./spool-helpers.js";

const PUBLISH_TIMEOUT = 1000;
/** A reply waits at most for a slot and a confirm (then the spool's flushed write); the rest is slack. */
const SESSION_DEADLINE = 2 * PUBLISH_TIMEOUT + 6000;

describe("SinkSpool with AmqpSink", () => {
  test("cut, stall and restore under load: every 250 is in the queue with its id, none is 451", async (t) => {
    const proxied = await proxiedSinkOrSkip(t, "spool", {
      publishTimeout: PUBLISH_TIMEOUT,
      window: 64,
      reconnectDelay: { min: 50, max: 300 },
    });
    if (!proxied) return;
    const { sink, proxy, channel, queue } = proxied;
    const fixture = await spoolFixture(t);
    const log = keptLogger();
    const spool = await fixture.open(sink, { retryDelay: { min: 50, max: 500 }, logger: log });
    const port = await startSinkServer(t, spool);
    const load = runLoad(port, 20, 20_000, SESSION_DEADLINE);
    t.after(() => load.stop());
    const { accepted, spooled, drained } = spoolProgress(load, spool);

    await waitFor(accepted(50), "50 messages accepted before any fault", 15_000);
    proxy.cut();
    await waitFor(spooled(50), "50 messages spooled while the broker is cut off", 15_000);
    proxy.restore();
    await waitFor(drained, "the spool to be forwarded after the cut", 20_000);
    await waitFor(accepted(50), "50 more accepted after the cut", 15_000);

    proxy.stall();
    await waitFor(spooled(50), "50 messages spooled while the broker is stalled", 20_000);
    proxy.restore();
    await waitFor(drained, "the spool to be forwarded after the stall", 20_000);
    await waitFor(accepted(50), "50 more accepted after the stall", 15_000);
    await load.stop();
    await waitFor(drained, "the last spooled messages to be forwarded", 20_000);

    assert.deepEqual(load.hung, [], "no session waited past its deadline");
    assert.deepEqual(load.other, [], "every reply was a 250 or a 451 4.3.0");
    assert.equal(load.refused, 0, "no message got a 451: the spool took what the broker could not");
    // Publishes that timed out during the stall are confirmed once it ends: wait for the queue to settle.
    await waitFor(() => sink.inFlight === 0, "the stalled publishes to settle", 15_000);
    const queued = await drainQueue(channel, queue);
    const copies = assertQueueHoldsAccepted(queued, load.accepted);
    t.diagnostic(
      `accepted ${load.accepted.size}, spooled ${spool.stats.spooled}, forwarded ${spool.stats.forwarded}, queued ${queued.length} (${queued.length - copies.size} duplicates by id)`,
    );
  });

  test("a message the broker refuses (unroutable) gets 451 and is not spooled", async (t) => {
    const broker = await brokerOrSkip(t);
    if (!broker) return;
    const exchange = uniqueName("spool-refuse");
    const queue = `${exchange}-q`;
    cleanUpAfter(t, { queue, exchange });
    const sink = await AmqpSink.open({
      url: BROKER_URL,
      exchange,
      routingKey: "{domain}",
      declare: { exchangeType: "direct", queue, bindingKey: "routed.test" },
      publishTimeout: PUBLISH_TIMEOUT,
      logger: silentLogger,
    });
    const fixture = await spoolFixture(t);
    const spool = await fixture.open(sink);
    const port = await startSinkServer(t, spool);
    const client = await ehloClient(port);
    t.after(() => client.close());

    const refused = await sendOne(client, "a@example.org", ["b@nowhere.test"], message("unroutable"));
    assert.match(refused, /^451 4\.3\.0 /);
    const routed = await sendOne(client, "a@example.org", ["b@routed.test"], message("routed"));
    assert.ok(queuedId(routed), routed);
    assert.deepEqual(spool.stats, {
      sink: "up",
      messages: 0,
      bytes: 0,
      forwarding: 0,
      full: false,
      spooled: 0,
      forwarded: 0,
      refused: 0,
    });
    const queued = await drainQueue(broker.channel, queue);
    assert.deepEqual(
      queued.map((message) => String(message.properties.messageId)),
      [queuedId(routed)],
    );
  });
});
