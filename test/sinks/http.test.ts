/**
 * HttpSink end to end: an SMTP session delivers through the sink to the example receiver, which checks
 * the signature and stores the message in a Maildir; bytes, envelope (SMTPUTF8 included) and session
 * facts arrive as sent. And the signature itself: what it covers, and that the receiver refuses a bad one.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { inspect } from "node:util";
import { SmtpError } from "../../src/protocol/errors.js";
import { HttpSink } from "../../src/sinks/http.js";
import {
  httpSinkSignature,
  type SignedParts,
  verifyHttpSinkSignature,
} from "../../src/sinks/http-signature.js";
import { encodeMailgateEnvelope } from "../../src/sinks/mailgate-envelope.js";
import { RawClient } from "../helpers/clients.js";
import { SECRET, startReceiver, startSmtp } from "./http-helpers.js";

async function* chunks(...parts: (string | Buffer)[]): AsyncGenerator<Buffer> {
  for (const part of parts) yield Buffer.from(part);
}

describe("HttpSink", () => {
  test("an SMTPUTF8 message through an SMTP session arrives byte-exact, with its envelope and session facts", async (t) => {
    const receiver = await startReceiver(t);
    const sink = new HttpSink({ url: receiver.url, secret: SECRET, requestTimeout: 5000 });
    t.after(() => sink.close());
    const { port } = await startSmtp(t, sink);
    const client = await RawClient.greeted(port);
    t.after(() => client.close());
    assert.match(await client.command("EHLO client.test"), /SMTPUTF8/);

    const recipients = ["δοκιμή@παράδειγμα.δοκιμή", "plain@example.com"];
    const small = Buffer.from(
      "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nFrom: Jörg <jörg@bücher.example>\r\n\r\nÄ line\r\n.starts with a dot\r\n",
      "utf8",
    );
    // Larger than bufferMessagesUpTo: streamed, its signature in a trailer.
    const large = Buffer.concat([
      Buffer.from("Subject: large\r\n\r\n"),
      Buffer.alloc(300_000, "0123456789\r\n"),
    ]);
    const ids: string[] = [];
    for (const body of [small, large]) {
      assert.match(await client.command("MAIL FROM:<jörg@bücher.example> SMTPUTF8"), /^250 /);
      for (const to of recipients) assert.match(await client.command(`RCPT TO:<${to}>`), /^250 /);
      assert.match(await client.command("DATA"), /^354 /);
      const stuffed = body.toString("latin1").replaceAll("\r\n.", "\r\n..");
      client.write(Buffer.concat([Buffer.from(stuffed, "latin1"), Buffer.from(".\r\n")]));
      const reply = await client.reply();
      const id = /^250 2\.0\.0 Ok: queued as (\S+)\r\n$/.exec(reply)?.[1];
      assert.ok(id, reply);
      ids.push(id);
    }

    const stored = await receiver.messages();
    assert.equal(stored.length, 2);
    for (const [index, body] of [small, large].entries()) {
      const message = stored.find((m) => m.body.length === body.length);
      assert.ok(message, `message ${index} stored`);
      assert.ok(message.body.equals(body), `message ${index} byte-exact`);
      assert.equal(message.from, "jörg@bücher.example");
      assert.deepEqual(message.to, recipients);
      const id = ids[index] as string;
      assert.equal(receiver.stored.get(id), 1);
      const envelope = receiver.envelopes.get(id);
      assert.deepEqual(envelope?.to, recipients);
      assert.equal(envelope?.session?.helo, "client.test");
      assert.equal(envelope?.session?.clientAddress, "127.0.0.1");
      assert.equal(envelope?.session?.smtputf8, true);
      assert.equal(envelope?.session?.tls, null);
    }
    assert.equal(receiver.badSignatures, 0);
  });

  test("a receiver with another secret refuses the request (401): the sink answers 451 and nothing is stored", async (t) => {
    const receiver = await startReceiver(t, { secret: "another secret, 32 bytes long!!!" });
    const sink = new HttpSink({ url: receiver.url, secret: SECRET, requestTimeout: 5000 });
    t.after(() => sink.close());
    for (const bufferMessagesUpTo of [1024, 0]) {
      const streamed = new HttpSink({ url: receiver.url, secret: SECRET, bufferMessagesUpTo });
      t.after(() => streamed.close());
      await assert.rejects(
        streamed.deliver({ from: "a@x.test", to: ["b@y.test"] }, chunks("Subject: x\r\n\r\n", "body\r\n")),
        (error: unknown) =>
          error instanceof SmtpError &&
          error.code === 451 &&
          error.enhancedCode === "4.3.0" &&
          /401/.test(error.message),
      );
    }
    assert.equal(receiver.badSignatures, 2);
    assert.equal((await receiver.messages()).length, 0);
  });

  test("the signature covers the timestamp, the id, the envelope and the body; old timestamps fail", () => {
    const now = Date.now();
    const parts: SignedParts = {
      timestamp: String(Math.floor(now / 1000)),
      id: "1F2E3D",
      envelope: encodeMailgateEnvelope({ from: "a@x.test", to: ["ü@y.test"] }),
      bodySha256: "ab".repeat(32),
    };
    const signature = httpSinkSignature(SECRET, parts);
    assert.match(signature, /^v1=[0-9a-f]{64}$/);
    assert.equal(verifyHttpSinkSignature(SECRET, parts, signature, { now }), true);
    assert.equal(
      verifyHttpSinkSignature(["old secret that is long", SECRET], parts, signature, { now }),
      true,
    );
    for (const changed of [
      { timestamp: String(Number(parts.timestamp) + 1) },
      { id: "1F2E3E" },
      { envelope: encodeMailgateEnvelope({ from: "a@x.test", to: ["u@y.test"] }) },
      { bodySha256: `${"ab".repeat(31)}ac` },
    ]) {
      assert.equal(verifyHttpSinkSignature(SECRET, { ...parts, ...changed }, signature, { now }), false);
    }
    assert.equal(
      verifyHttpSinkSignature("another secret, 32 bytes long!!!", parts, signature, { now }),
      false,
    );
    assert.equal(verifyHttpSinkSignature(SECRET, parts, undefined, { now }), false);
    assert.equal(verifyHttpSinkSignature(SECRET, parts, signature, { now: now + 301_000 }), false);
  });

  test("options are checked, and the secret is never shown", () => {
    assert.throws(() => new HttpSink({ url: "ftp://x.test/", secret: SECRET }), /http: or https:/);
    assert.throws(() => new HttpSink({ url: "http://u:p@x.test/", secret: SECRET }), /credentials/);
    assert.throws(() => new HttpSink({ url: "http://x.test/", secret: "short" }), /at least 16 bytes/);
    assert.throws(() => new HttpSink({ url: "http://x.test/", secret: SECRET, maxSockets: 0 }), /maxSockets/);
    const sink = new HttpSink({ url: "http://x.test/", secret: SECRET });
    assert.doesNotMatch(JSON.stringify(sink), /0123456789abcdef/);
    assert.doesNotMatch(inspect(sink, { depth: 5, showHidden: true }), /0123456789abcdef/);
    return sink.close();
  });
});
