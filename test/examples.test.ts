/** Every example in examples/ runs here, over loopback, with a raw client. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, type TestContext, test } from "node:test";
import { NormalizingSmtpd } from "../examples/normalize-addresses.js";
import { LimitingSmtpd } from "../examples/size-and-teergrube.js";
import { GuardedSmtpd } from "../examples/spam-guards.js";
import { createFileSinkServer } from "../examples/stream-to-file.js";
import { TracingSmtpd } from "../examples/trace-headers.js";
import type { SessionContext, SmtpServer, SmtpServerOptions } from "../src/index.js";
import { RawClient, silentLogger } from "./helpers/clients.js";

const QUIET: SmtpServerOptions = {
  ports: 0,
  hostname: "mx.test",
  logger: silentLogger,
  loggerSeverity: "fatal",
};

async function started(t: TestContext, server: SmtpServer): Promise<number> {
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  return server.ports[0] as number;
}

/** Records the messages a server accepts, whatever its class. */
function record(server: SmtpServer): { from: string; to: string[]; data: string }[] {
  const seen: { from: string; to: string[]; data: string }[] = [];
  const original = server.onMessageData.bind(server);
  server.onMessageData = (ctx: SessionContext) => {
    seen.push({
      from: ctx.envelope.from,
      to: [...ctx.envelope.to],
      data: ctx.message.data.toString("latin1"),
    });
    return original(ctx);
  };
  return seen;
}

async function transaction(client: RawClient, from: string, to: string[], body: string): Promise<string[]> {
  const replies = [await client.command(`MAIL FROM:<${from}>`)];
  for (const rcpt of to) replies.push(await client.command(`RCPT TO:<${rcpt}>`));
  const data = await client.command("DATA");
  replies.push(data);
  if (!data.startsWith("354")) return replies;
  client.write(`${body}.\r\n`);
  replies.push(await client.reply());
  return replies;
}

describe("examples", () => {
  test("normalize-addresses lower-cases MAIL FROM and RCPT TO", async (t) => {
    const server = new NormalizingSmtpd(QUIET);
    const seen = record(server);
    const client = await RawClient.greeted(await started(t, server));
    await client.command("EHLO client.test");
    const replies = await transaction(
      client,
      "Alice@Example.TEST",
      ["Bob@Example.TEST"],
      "Subject: x\r\n\r\nhi\r\n",
    );
    assert.equal(replies.at(-1), "250 2.0.0 Ok: message accepted\r\n");
    assert.deepEqual(seen[0]?.from, "alice@example.test");
    assert.deepEqual(seen[0]?.to, ["bob@example.test"]);
    client.close();
  });

  test("trace-headers puts Received first and X-MyHeader right before the empty line", async (t) => {
    const server = new TracingSmtpd(QUIET);
    const seen = record(server);
    const client = await RawClient.greeted(await started(t, server));
    await client.command("EHLO client.test");
    await transaction(client, "a@x.test", ["b@y.test"], "Subject: x\r\nFrom: a@x.test\r\n\r\nbody\r\n");
    const data = seen[0]?.data ?? "";
    assert.match(
      data,
      /^Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby \S+ \(mailgate\) with ESMTP\r\n\tfor <b@y\.test>;\r\n\t[A-Z][a-z]{2}, \d+ [A-Z][a-z]{2} \d{4} [\d:]{8} \+0000\r\n/,
    );
    assert.ok(data.endsWith("Subject: x\r\nFrom: a@x.test\r\nX-MyHeader: 1.0\r\n\r\nbody\r\n"), data);
    client.close();
  });

  test("spam-guards: 550 for a blocked recipient, the others kept", async (t) => {
    const server = new GuardedSmtpd(QUIET);
    const seen = record(server);
    const client = await RawClient.greeted(await started(t, server));
    await client.command("EHLO client.test");
    const replies = await transaction(client, "a@x.test", ["not.name@domain.con", "ok@y.test"], "hi\r\n");
    assert.match(replies[1] ?? "", /^550 5\.1\.1 /);
    assert.equal(replies[2], "250 2.1.5 Ok\r\n");
    assert.deepEqual(seen[0]?.to, ["ok@y.test"]);
    client.close();
  });

  test("spam-guards: 421 drops an identified spammer at once", async (t) => {
    const server = new GuardedSmtpd(QUIET);
    const client = await RawClient.greeted(await started(t, server));
    await client.command("EHLO client.test");
    await client.command("MAIL FROM:<a@x.test>");
    assert.match(await client.command("RCPT TO:<spam.trap@domain.con>"), /^421 /);
    await client.untilEnd();
  });

  test("spam-guards: 421 after too many unknown commands", async (t) => {
    const server = new GuardedSmtpd(QUIET);
    const client = await RawClient.greeted(await started(t, server));
    for (let i = 0; i < 5; i++) assert.match(await client.command(`JUNK${i}`), /^500 5\.5\.2 /);
    assert.match(await client.command("JUNK5"), /^421 /);
    await client.untilEnd();
  });

  test("size-and-teergrube: 552 once the message grows too big, after its end", async (t) => {
    const server = new LimitingSmtpd(QUIET, 10_000, 0);
    const seen = record(server);
    const client = await RawClient.greeted(await started(t, server));
    await client.command("EHLO client.test");
    const big = `Subject: big\r\n\r\n${"x".repeat(998)}\r\n`.repeat(20);
    const replies = await transaction(client, "a@x.test", ["b@y.test"], big);
    assert.match(replies.at(-1) ?? "", /^552 5\.3\.4 /);
    assert.equal(seen.length, 0);
    // The session goes on: a small message is accepted.
    const again = await transaction(client, "a@x.test", ["b@y.test"], "Subject: small\r\n\r\nok\r\n");
    assert.equal(again.at(-1), "250 2.0.0 Ok: message accepted\r\n");
    client.close();
  });

  test("size-and-teergrube: a client whose HELO matches is slowed down", async (t) => {
    const server = new LimitingSmtpd(QUIET, 1_000_000, 150);
    const client = await RawClient.greeted(await started(t, server));
    await client.command("EHLO spammer.domain.test");
    const begin = Date.now();
    const replies = await transaction(client, "a@x.test", ["b@y.test"], "Subject: x\r\n\r\nhi\r\n");
    assert.equal(replies.at(-1), "250 2.0.0 Ok: message accepted\r\n");
    assert.ok(Date.now() - begin >= 140, "the teergrube delayed the message");
    client.close();
  });

  test("stream-to-file writes the message to a file before answering 250", async (t) => {
    const directory = await mkdtemp(join(tmpdir(), "mailgate-example-"));
    t.after(() => rm(directory, { recursive: true, force: true }));
    const server = createFileSinkServer(directory, QUIET);
    const client = await RawClient.greeted(await started(t, server));
    await client.command("EHLO client.test");
    const line = `${"y".repeat(76)}\r\n`;
    const body = `Subject: stream\r\n\r\n${line.repeat(50_000)}`;
    const replies = await transaction(client, "a@x.test", ["b@y.test"], body);
    assert.match(replies.at(-1) ?? "", /^250 2\.0\.0 Ok: written to .*message-1\.eml\r\n$/);
    const stored = await readFile(join(directory, "message-1.eml"));
    const digest = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
    assert.equal(digest(stored), digest(body));
    client.close();
  });
});
