/**
 * SinkSpool in front of HttpSink under load: 10 SMTP clients send 2 KB messages through a spool whose sink
 * reaches the example receiver through a TcpProxy that the test cuts, stalls and restores. While the
 * endpoint is away the messages are spooled and answered 250; once it is back they are forwarded. At the
 * end every message that got a 250 was stored by the receiver, byte-exact, under the id its 250 named; no
 * message got a 451; no session waited past its deadline.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { HttpSink, parseEnvelopeHeaders } from "../../src/index.js";
import { waitFor } from "../helpers/clients.js";
import { TcpProxy } from "../helpers/tcp-proxy.js";
import { SECRET, startReceiver } from "./http-helpers.js";
import { runLoad } from "./sink-load.js";
import { startSinkServer } from "./sink-server.js";
import { keptLogger, spoolFixture, spoolProgress } from "./spool-helpers.js";

const REQUEST_TIMEOUT = 500;
/** A reply waits at most for one request (REQUEST_TIMEOUT) and a flushed write; the rest is slack. */
const SESSION_DEADLINE = REQUEST_TIMEOUT + 6000;

test("cut and stall under load: every 250 reaches the endpoint byte-exact with its id, none is 451", async (t) => {
  const locations = new Map<string, string>();
  const receiver = await startReceiver(t, {
    onStored: (id, _envelope, location) => locations.set(id, location),
  });
  const proxy = await TcpProxy.start(receiver.port);
  t.after(() => proxy.close());
  const sink = new HttpSink({
    url: `http://127.0.0.1:${proxy.port}/inbound`,
    secret: SECRET,
    requestTimeout: REQUEST_TIMEOUT,
    maxSockets: 8,
  });
  const fixture = await spoolFixture(t);
  const log = keptLogger();
  const spool = await fixture.open(sink, { retryDelay: { min: 50, max: 300 }, logger: log });
  const port = await startSinkServer(t, spool);
  const load = runLoad(port, 10, 5000, SESSION_DEADLINE);
  t.after(() => load.stop());
  const { accepted, spooled, drained } = spoolProgress(load, spool);

  await waitFor(accepted(30), "30 messages accepted before any fault", 15_000);
  // (A busy machine may already spool a few: a request slower than REQUEST_TIMEOUT is SinkUnavailable.)

  proxy.cut();
  await waitFor(spooled(30), "30 messages spooled while the endpoint is cut off", 15_000);
  assert.equal(spool.stats.sink, "down");
  proxy.restore();
  await waitFor(drained, "the spool to be forwarded after the cut", 15_000);
  await waitFor(accepted(30), "30 more accepted after the cut", 15_000);

  proxy.stall();
  await waitFor(spooled(30), "30 messages spooled while the endpoint is stalled", 15_000);
  proxy.restore();
  await waitFor(drained, "the spool to be forwarded after the stall", 15_000);
  await waitFor(accepted(30), "30 more accepted after the stall", 15_000);
  await load.stop();
  await waitFor(drained, "the last spooled messages to be forwarded", 15_000);

  assert.deepEqual(load.hung, [], "no session waited past its deadline");
  assert.deepEqual(load.other, [], "every reply was a 250 or a 451 4.3.0");
  assert.equal(load.refused, 0, "no message got a 451: the spool took what the endpoint could not");
  const missing = [...load.accepted.keys()].filter((id) => !receiver.stored.has(id));
  assert.deepEqual(missing, [], "every message that got 250 was stored by the endpoint");
  for (const [id, sent] of load.accepted) {
    const file = await readFile(locations.get(id) as string);
    assert.deepEqual(file.subarray(parseEnvelopeHeaders(file).bodyOffset), sent, `message ${id} byte-exact`);
  }
  assert.ok(log.lines.some((line) => /^WARN .*the sink is unavailable/.test(line)));
  assert.ok(log.lines.some((line) => /^INFO .*the sink is back after/.test(line)));
  const copies = [...receiver.stored.values()].reduce((sum, count) => sum + count, 0);
  t.diagnostic(
    `accepted ${load.accepted.size}, spooled ${spool.stats.spooled}, forwarded ${spool.stats.forwarded}, stored ${copies} (${copies - receiver.stored.size} duplicates by id)`,
  );
});
