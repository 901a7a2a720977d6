/**
 * HttpSink under load while the path to the endpoint fails: 20 SMTP clients send 2 KB messages (half
 * buffered, half streamed) through the sink and a TcpProxy to the example receiver, while the proxy cuts,
 * restores, stalls and restores the path. Afterwards every message that got a 250 was stored by the
 * receiver (by message id), every 250 matches a delivery the sink resolved and every 4xx one it
 * rejected, and no reply took longer than its bound.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { HttpSink } from "../../src/sinks/http.js";
import { sessionFacts } from "../../src/store/session-facts.js";
import { RawClient, startTestServer, waitFor } from "../helpers/clients.js";
import { TcpProxy } from "../helpers/tcp-proxy.js";
import { SECRET, startReceiver } from "./http-helpers.js";

const CLIENTS = 20;
const MESSAGES_PER_CLIENT = 12;
const REQUEST_TIMEOUT = 600;
/** No SMTP reply may take longer: a buffered message's request is bounded by REQUEST_TIMEOUT in all. */
const REPLY_BOUND = 5000;

test("cut, stall and restore under load: every 250 is stored, no 4xx is counted, no session hangs", async (t) => {
  const receiver = await startReceiver(t);
  const proxy = await TcpProxy.start(receiver.port);
  t.after(() => proxy.close());
  const url = `http://127.0.0.1:${proxy.port}/inbound`;
  const options = { url, secret: SECRET, requestTimeout: REQUEST_TIMEOUT, maxSockets: 8 };
  const buffered = new HttpSink(options);
  const streamed = new HttpSink({ ...options, bufferMessagesUpTo: 512 });
  t.after(() => Promise.all([buffered.close(100), streamed.close(100)]));

  const resolved = new Set<string>();
  let rejected = 0;
  const { port } = await startTestServer(t, {
    maxProcessings: CLIENTS,
    async onMessageStream(ctx, stream) {
      const sink = ctx.envelope.from.startsWith("stream") ? streamed : buffered;
      try {
        const receipt = await sink.deliver(
          { from: ctx.envelope.from, to: [...ctx.envelope.to], session: sessionFacts(ctx) },
          stream,
        );
        resolved.add(receipt.id);
        return `Ok: queued as ${receipt.id}`;
      } catch (error) {
        rejected += 1;
        throw error;
      }
    },
  });

  const accepted: string[] = [];
  const temporary: string[] = [];
  const other: string[] = [];
  let slowest = 0;
  async function client(index: number): Promise<void> {
    const smtp = await RawClient.greeted(port);
    try {
      await smtp.command("EHLO load.test");
      for (let n = 0; n < MESSAGES_PER_CLIENT; n++) {
        const from = index % 2 ? `stream${index}@x.test` : `buffer${index}@x.test`;
        assert.match(await smtp.command(`MAIL FROM:<${from}>`), /^250 /);
        assert.match(await smtp.command(`RCPT TO:<r${n}@y.test>`), /^250 /);
        assert.match(await smtp.command("DATA"), /^354 /);
        const body = `Subject: ${index}-${n}\r\n\r\n${"x".repeat(2000)}\r\n.\r\n`;
        const start = Date.now();
        smtp.write(body);
        const reply = await smtp.reply(REPLY_BOUND);
        slowest = Math.max(slowest, Date.now() - start);
        const id = /^250 2\.0\.0 Ok: queued as (\S+)\r\n$/.exec(reply)?.[1];
        if (id) accepted.push(id);
        else if (reply.startsWith("451 4.3.0 ")) temporary.push(reply);
        else other.push(reply);
      }
      await smtp.command("QUIT");
    } finally {
      smtp.close();
    }
  }

  const load = Promise.all(Array.from({ length: CLIENTS }, (_, index) => client(index)));
  let loadDone = false;
  void load.finally(() => (loadDone = true)).catch(() => {});
  const phase = async (name: string, condition: () => boolean) =>
    waitFor(() => condition() || loadDone, name, 15_000);

  await phase("40 messages accepted", () => accepted.length >= 40);
  const beforeCut = temporary.length;
  proxy.cut();
  await phase("a failure while cut", () => temporary.length > beforeCut);
  const cutFailures = temporary.length - beforeCut;
  proxy.restore();
  const afterCut = accepted.length;
  await phase("40 more accepted", () => accepted.length >= afterCut + 40);
  const beforeStall = temporary.length;
  proxy.stall();
  await phase("a failure while stalled", () => temporary.length > beforeStall);
  const stallFailures = temporary.length - beforeStall;
  proxy.restore();
  await load;

  t.diagnostic(
    `${accepted.length} accepted, ${temporary.length} answered 451 (cut: ${cutFailures}+, stall: ${stallFailures}+), slowest reply ${slowest} ms`,
  );
  assert.deepEqual(other, []);
  assert.equal(accepted.length + temporary.length, CLIENTS * MESSAGES_PER_CLIENT);
  assert.ok(cutFailures > 0 && stallFailures > 0, "the faults took effect while the load ran");
  // Every 250 is a delivery the sink resolved, and every 451 one it rejected.
  assert.deepEqual(new Set(accepted), resolved);
  assert.equal(accepted.length, resolved.size);
  assert.equal(rejected, temporary.length);
  // Every message that got a 250 is stored at least once.
  const missing = accepted.filter((id) => !receiver.stored.has(id));
  assert.deepEqual(missing, []);
  // The Maildir holds what the receiver counted (a 451 may have been stored too: at least once).
  const storedCount = [...receiver.stored.values()].reduce((sum, count) => sum + count, 0);
  assert.equal((await receiver.messages()).length, storedCount);
  assert.ok(storedCount >= accepted.length);
  assert.equal(buffered.inFlight + streamed.inFlight, 0);
});
