/**
 * `mailgate serve`'s operations over a broker sink (the seam the --sink flag will use): /readyz is 503
 * while the AmqpSink is cut off from RabbitMQ (through a TcpProxy) and 200 again once it reconnects, and
 * /metrics shows the sink's state and the failed delivery in the store latency histogram.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ServeOperations } from "../../src/cli/operations.js";
import { createStoringServer } from "../../src/cli/serve.js";
import { RawClient, waitFor } from "../helpers/clients.js";
import { proxiedSinkOrSkip } from "../sinks/amqp-broker.js";

async function get(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.text() };
}

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** One message through a raw client; resolves with the reply to its end. */
async function send(port: number): Promise<string> {
  const client = await RawClient.greeted(port);
  try {
    await client.command("EHLO client.test");
    await client.command("MAIL FROM:<a@x.test>");
    await client.command("RCPT TO:<b@y.test>");
    await client.command("DATA");
    return await client.command("Subject: s\r\n\r\nbody\r\n.");
  } finally {
    client.close();
  }
}

test("/readyz follows the AmqpSink's connection: 503 while cut off, 200 once reconnected", async (t) => {
  const proxied = await proxiedSinkOrSkip(t, "readyz", {
    reconnectDelay: { min: 50, max: 200 },
    closeTimeout: 1000, // the proxy may be closed first: no publish is in flight to wait for
  });
  if (!proxied) return;
  const { sink, proxy } = proxied;
  const operations = new ServeOperations(
    { metricsListen: { host: "127.0.0.1", port: 0 }, logFormat: "text" },
    "info",
  );
  const server = createStoringServer(
    { hosts: "127.0.0.1", ports: "0", loggerSeverity: "fatal", ...operations.serverOptions },
    operations.watch(sink),
  );
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  await operations.start(server);
  t.after(() => operations.close());
  const endpoint = operations.endpointUrl as string;
  const port = server.ports[0] as number;

  assert.deepEqual(await get(`${endpoint}/readyz`), { status: 200, body: "ready\n" });
  assert.match(await send(port), /^250 /);

  proxy.cut();
  await waitFor(() => sink.state !== "connected", "the sink to notice the cut");
  const unready = await get(`${endpoint}/readyz`);
  assert.equal(unready.status, 503);
  assert.match(unready.body, /^not ready: the sink is (disconnected|connecting)\n$/);
  assert.match(await send(port), /^451 4\.3\.0 /);
  let metrics = (await get(`${endpoint}/metrics`)).body;
  // Disconnected, or connecting again by the time it is scraped: never connected.
  assert.match(metrics, /^mailgate_store_state\{state="(disconnected|connecting)"\} 1$/m);
  assert.equal(sample(metrics, 'mailgate_store_state{state="connected"}'), undefined);
  assert.equal(sample(metrics, 'mailgate_store_duration_seconds_count{outcome="stored"}'), 1);
  assert.equal(sample(metrics, 'mailgate_store_duration_seconds_count{outcome="failed"}'), 1);
  assert.equal(sample(metrics, 'mailgate_messages_total{outcome="refused"}'), 1);

  proxy.restore();
  await waitFor(() => sink.state === "connected", "the sink to reconnect", 10_000);
  assert.deepEqual(await get(`${endpoint}/readyz`), { status: 200, body: "ready\n" });
  metrics = (await get(`${endpoint}/metrics`)).body;
  assert.equal(sample(metrics, 'mailgate_store_state{state="connected"}'), 1);
});
