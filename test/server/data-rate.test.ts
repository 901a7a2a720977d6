/** Slowloris in DATA: a minimum data rate (Postfix's smtpd_min_data_rate), not only an idle timer. */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { SmtpServer } from "../../src/server/server.js";
import { RawClient, silentLogger } from "../helpers/clients.js";

/** A server with these deadlines, and a client that has just received its 354. */
async function inData(t: TestContext, ioCmdTimeout: number): Promise<RawClient> {
  const server = new SmtpServer({
    ports: 0,
    hostname: "mx.test",
    ioCmdTimeout,
    minDataRate: 1000,
    logger: silentLogger,
    loggerSeverity: "fatal",
  });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  const client = await RawClient.greeted(server.ports[0] as number);
  await client.command("EHLO c");
  await client.command("MAIL FROM:<a@x.test>");
  await client.command("RCPT TO:<b@y.test>");
  assert.match(await client.command("DATA"), /^354 /);
  return client;
}

test("one byte every 50 ms in DATA is cut near ioCmdTimeout, though the client is never idle", async (t) => {
  const client = await inData(t, 1000);
  const begin = Date.now();
  const drip = setInterval(() => {
    if (!client.ended) client.write("x");
  }, 50);
  t.after(() => clearInterval(drip));
  const rest = await client.untilEnd(5000);
  clearInterval(drip);
  const elapsed = Date.now() - begin;
  assert.match(rest, /^421 4\.4\.2 mx\.test Error: timeout exceeded\r\n$/);
  // 20 bytes a second earn 20 ms a second at 1000 B/s: the cut comes a little after one second.
  assert.ok(elapsed >= 900 && elapsed < 2500, `cut after ${elapsed} ms`);
});

test("a fast client is never cut in a long DATA, however long it takes in total", async (t) => {
  const client = await inData(t, 500);
  // 2 KB every 100 ms (20 KB/s, well above the minimum) for 1.5 s: three times ioCmdTimeout.
  for (let i = 0; i < 15; i++) {
    client.write(`${"y".repeat(2046)}\r\n`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  client.write(".\r\n");
  assert.equal(await client.reply(), "250 2.0.0 Ok: message accepted\r\n");
  client.close();
});
