/**
 * The `observer` option: a server tells it of connections, commands, replies, messages and failures, and
 * what it is told matches what real clients saw; an observer that throws breaks nothing.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { SmtpError } from "../../src/protocol/errors.js";
import type { RefusalReason, ServerObserver } from "../../src/protocol/observer.js";
import { SmtpServer, type SmtpServerOptions } from "../../src/server/server.js";
import { RawClient, silentLogger, startRecordingServer, waitFor } from "../helpers/clients.js";
import { watchProcess } from "../helpers/process-watch.js";

/** An observer that records every event by name, in order. */
function recordingObserver() {
  const events = {
    opened: 0,
    closed: 0,
    refused: [] as [RefusalReason, string][],
    commands: [] as string[],
    replies: [] as number[],
    bytes: 0,
    accepted: 0,
    refusedMessages: 0,
    hookFailures: [] as unknown[],
    authFailures: 0,
  };
  const observer: ServerObserver = {
    connectionOpened: () => events.opened++,
    connectionClosed: () => events.closed++,
    connectionRefused: (reason, client) => events.refused.push([reason, client]),
    command: (_ctx, verb) => events.commands.push(verb),
    reply: (_ctx, code) => events.replies.push(code),
    bytesReceived: (_ctx, count) => {
      events.bytes += count;
    },
    messageAccepted: () => events.accepted++,
    messageRefused: () => events.refusedMessages++,
    hookFailed: (_ctx, error) => events.hookFailures.push(error),
    authFailed: () => events.authFailures++,
  };
  return { events, observer };
}

/** A client that keeps every reply code it read and counts the bytes it sent. */
class CountingClient {
  readonly codes: number[] = [];
  sent = 0;
  private constructor(readonly raw: RawClient) {}

  static async greeted(port: number): Promise<CountingClient> {
    const client = new CountingClient(await RawClient.connect(port));
    client.record(await client.raw.reply());
    return client;
  }

  private record(reply: string): string {
    this.codes.push(Number(reply.slice(0, 3)));
    return reply;
  }

  async command(line: string): Promise<string> {
    this.sent += Buffer.byteLength(`${line}\r\n`);
    return this.record(await this.raw.command(line));
  }
}

async function observedServer(t: TestContext, options: SmtpServerOptions = {}) {
  const { events, observer } = recordingObserver();
  const served = await startRecordingServer(t, { observer, ...options });
  return { ...served, events };
}

test("commands, replies, bytes and messages reach the observer as the client saw them", async (t) => {
  const { port, server, events } = await observedServer(t, {
    onRcptTo(_ctx, address) {
      if (address === "broken@y.test") throw new Error("a bug in the hook");
    },
    onMessageData(ctx) {
      if (ctx.message.data.includes("refuse me")) throw new SmtpError(554, "Refused by policy", "5.7.1");
    },
  });
  const client = await CountingClient.greeted(port);
  assert.match(await client.command("EHLO client.test"), /^250 /m);
  assert.match(await client.command("FROB something"), /^500 /);
  assert.match(await client.command("MAIL FROM:<a@x.test>"), /^250 /);
  assert.match(await client.command("RCPT TO:<broken@y.test>"), /^451 /);
  assert.match(await client.command("RCPT TO:<b@y.test>"), /^250 /);
  assert.match(await client.command("DATA"), /^354 /);
  assert.match(await client.command("Subject: one\r\n\r\nbody\r\n."), /^250 /);
  assert.match(await client.command("MAIL FROM:<a@x.test>"), /^250 /);
  assert.match(await client.command("RCPT TO:<b@y.test>"), /^250 /);
  assert.match(await client.command("DATA"), /^354 /);
  assert.match(await client.command("Subject: two\r\n\r\nrefuse me\r\n."), /^554 /);
  assert.match(await client.command("QUIT"), /^221 /);
  await client.raw.closed;
  await waitFor(() => events.closed === 1, "the connection's close");

  assert.equal(events.opened, 1);
  assert.deepEqual(events.commands, [
    "EHLO",
    "FROB",
    "MAIL",
    "RCPT",
    "RCPT",
    "DATA",
    "MAIL",
    "RCPT",
    "DATA",
    "QUIT",
  ]);
  assert.deepEqual(events.replies, client.codes);
  assert.equal(events.bytes, client.sent);
  assert.equal(events.accepted, 1);
  assert.equal(events.refusedMessages, 1);
  assert.equal(events.hookFailures.length, 1);
  assert.match(String(events.hookFailures[0]), /a bug in the hook/);
  assert.deepEqual(events.refused, []);
  assert.equal(server.connections, 0);
});

test("refusals are told with their reason: per-IP limit, early talker, AUTH failures per address", async (t) => {
  const { port, events } = await observedServer(t, {
    maxConnectionsPerIp: 1,
    greetingDelay: 300,
    authMode: "optional",
    authOverPlaintext: true,
    maxAuthFailuresPerIp: 1,
  });
  // The early talker: it writes during the greeting pause.
  const talker = await RawClient.connect(port);
  talker.write("EHLO too.early\r\n");
  assert.match(await talker.untilEnd(), /^554 /);
  await waitFor(() => events.closed === 1, "the early talker's close");

  const first = await RawClient.greeted(port);
  // The second connection from the same address while the first is open.
  const second = await RawClient.connect(port);
  assert.match(await second.untilEnd(), /^421 4\.7\.0 /);
  assert.match(await first.command("EHLO client.test"), /^250 /m);
  const wrong = Buffer.from("\0user\0wrong password").toString("base64");
  assert.match(await first.command(`AUTH PLAIN ${wrong}`), /^535 /);
  // The address reached maxAuthFailuresPerIp: 421 and close.
  assert.match(await first.untilEnd(), /^421 4\.7\.0 /);
  await waitFor(() => events.closed === 2, "the AUTH client's close");

  assert.deepEqual(events.refused, [
    ["early-talker", "127.0.0.1"],
    ["max-connections-per-ip", "127.0.0.1"],
    ["auth-failures-per-ip", "127.0.0.1"],
  ]);
  assert.equal(events.authFailures, 1);
  assert.equal(events.opened, 2, "refused at accept: never opened");
});

test("a connection over maxConnections is told as refused", async (t) => {
  const { port, events } = await observedServer(t, { maxConnections: 1, maxProcessings: 1 });
  const first = await RawClient.greeted(port);
  const second = await RawClient.connect(port);
  assert.match(await second.untilEnd(), /^421 /);
  assert.deepEqual(events.refused, [["max-connections", "127.0.0.1"]]);
  first.close();
});

test("an observer that throws: sessions are served, one process warning", async (t) => {
  const watched = watchProcess(t);
  const { port, waitForMessages } = await startRecordingServer(t, {
    observer: {
      command() {
        throw new Error("observer is broken");
      },
      reply() {
        throw new Error("observer is broken too");
      },
    },
  });
  for (let session = 0; session < 2; session++) {
    const client = await RawClient.greeted(port);
    assert.match(await client.command("EHLO client.test"), /^250 /m);
    assert.match(await client.command("MAIL FROM:<a@x.test>"), /^250 /);
    assert.match(await client.command("RCPT TO:<b@y.test>"), /^250 /);
    assert.match(await client.command("DATA"), /^354 /);
    assert.match(await client.command("Subject: s\r\n\r\nbody\r\n."), /^250 /);
    assert.match(await client.command("QUIT"), /^221 /);
  }
  await waitForMessages(2);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(watched.rejections, []);
  assert.equal(watched.warnings.length, 1, `one warning, not one per event: ${watched.warnings.join(" | ")}`);
  assert.match(watched.warnings[0] ?? "", /the observer's (reply|command) threw \(observer is broken/);
});

test("an observer option that is not an object of functions is refused at construction", () => {
  const build = (observer: unknown) =>
    new SmtpServer({ logger: silentLogger, observer: observer as ServerObserver });
  assert.throws(() => build("metrics"), /Invalid option observer: it must be an object/);
  assert.throws(() => build({ command: 1 }), /Invalid option observer: its command must be a function/);
});
