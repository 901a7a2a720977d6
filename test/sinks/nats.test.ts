/**
 * NatsSink against the real nats-server: a round trip through an SMTP session, the duplicate window, a
 * stream that refuses, a subject no stream takes, the inline/claim-check boundary and the options.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { StoredMsg } from "@nats-io/jetstream";
import { NATS_HEADERS, NatsSink, readNatsMailHeaders, SinkUnavailable, SmtpError } from "../../src/index.js";
import { natsMailHeaders } from "../../src/sinks/nats-headers.js";
import { silentLogger } from "../helpers/clients.js";
import { NATS_URL, natsOrSkip, openStreamSink, readStream, uniqueStream } from "./nats-broker.js";
import { ehloClient, queuedId, sendOne, startSinkServer } from "./sink-server.js";

async function* chunks(...buffers: Buffer[]): AsyncGenerator<Buffer> {
  yield* buffers;
}

function headersOf(message: StoredMsg): (name: string) => string | undefined {
  return (name) => message.header?.get(name) || undefined;
}

describe("NatsSink", () => {
  test("a message sent over SMTP arrives byte-exact with its envelope, session facts and id", async (t) => {
    const nats = await natsOrSkip(t);
    if (!nats) return;
    const names = uniqueStream(t, "rt");
    const sink = await openStreamSink(t, names);
    assert.equal(sink.state, "connected");
    const port = await startSinkServer(t, sink);

    const client = await ehloClient(port);
    t.after(() => client.close());
    const recipients = ["Rcpt@Example.COM", "josé@exämple.de", "second@example.net"];
    const message = Buffer.from(
      "From: Sender <s@example.org>\r\nTo: José <josé@exämple.de>\r\nSubject: Grüße\r\n\r\nÜnïcödé body\r\n.. stuffed\r\n",
      "utf8",
    );
    const reply = await sendOne(client, "sender@example.org", recipients, message, { smtputf8: true });
    const id = queuedId(reply);
    assert.ok(id, `250 with an id, got ${reply}`);

    const [received, ...more] = await readStream(nats.jsm, names.stream);
    assert.ok(received, "the message is in the stream");
    assert.equal(more.length, 0);
    const expected = Buffer.from(
      message.toString("latin1").replace("\r\n.. stuffed", "\r\n. stuffed"),
      "latin1",
    );
    assert.deepEqual(Buffer.from(received.data), expected, "byte-exact body");
    assert.equal(received.subject, names.subject.replace("{domain}", "example.com"), "{domain}, lower-cased");
    const read = readNatsMailHeaders(headersOf(received));
    assert.equal(read.id, id, "Nats-Msg-Id is the envelope's id");
    assert.equal(read.claimCheck, null, "a small message travels in the body");
    assert.equal(read.envelope.from, "sender@example.org");
    assert.deepEqual(read.envelope.to, recipients, "every recipient, UTF-8 intact, in RCPT order");
    assert.equal(read.envelope.session?.clientAddress, "127.0.0.1");
    assert.equal(read.envelope.session?.helo, "client.test");
    assert.equal(read.envelope.session?.smtputf8, true);
    assert.equal(read.envelope.session?.tls, null);
    const info = await nats.jsm.streams.info(names.stream);
    assert.equal(info.config.duplicate_window, 600_000 * 1_000_000, "the duplicate window mailgate sets");
    assert.equal(info.config.discard, "new", "a full stream refuses rather than dropping accepted mail");
  });

  test("a publish repeated with the same id within the duplicate window is stored once", async (t) => {
    const nats = await natsOrSkip(t);
    if (!nats) return;
    const names = uniqueStream(t, "dup");
    const sink = await openStreamSink(t, names, { bucket: null, declare: { duplicateWindow: 60_000 } });
    const envelope = { from: "a@example.org", to: ["b@example.com"], id: "same-id-1" };
    const first = await sink.deliver(envelope, chunks(Buffer.from("first\r\n")));
    const second = await sink.deliver(envelope, chunks(Buffer.from("first\r\n")));
    assert.equal(second.location, first.location, "the PubAck of the retry names the stored message");
    const stored = await readStream(nats.jsm, names.stream);
    assert.equal(stored.length, 1, "JetStream dropped the duplicate");
  });

  test("a full stream (max_msgs, discard new) and a subject without a stream are refusals, not outages", async (t) => {
    const nats = await natsOrSkip(t);
    if (!nats) return;
    const names = uniqueStream(t, "full");
    const sink = await openStreamSink(t, names, { bucket: null, declare: { maxMsgs: 2 } });
    const deliver = (id: string, to = "b@example.com") =>
      sink.deliver({ from: "a@example.org", to: [to], id }, chunks(Buffer.from(`${id}\r\n`)));
    await deliver("full-1");
    await deliver("full-2");
    const isRefusal = (pattern: RegExp) => (error: unknown) => {
      assert.ok(error instanceof SmtpError, String(error));
      assert.equal(error instanceof SinkUnavailable, false, "a refusal, which a spool must not take");
      assert.equal(error.code, 451);
      assert.equal(error.enhancedCode, "4.3.0");
      assert.match(error.message, pattern);
      return true;
    };
    await assert.rejects(deliver("full-3"), isRefusal(/maximum messages exceeded/));

    const elsewhere = new NatsSink({
      servers: NATS_URL,
      subject: names.subject.replace(".{domain}", "-nowhere.{domain}"),
      bucket: null,
      logger: silentLogger,
    });
    await elsewhere.start();
    t.after(() => elsewhere.close());
    await assert.rejects(
      elsewhere.deliver({ from: "", to: ["x@example.com"], id: "nowhere-1" }, chunks(Buffer.from("x\r\n"))),
      isRefusal(/no stream takes/),
    );
    assert.equal(sink.state, "connected");
    assert.equal(sink.inFlight, 0);
  });

  test("a message that fits one NATS message with its headers goes inline, one byte more by claim check", async (t) => {
    const nats = await natsOrSkip(t);
    if (!nats) return;
    const names = uniqueStream(t, "edge");
    const sink = await openStreamSink(t, names);
    const maxPayload = nats.nc.info?.max_payload as number;
    const envelope = (id: string) => ({ from: "a@example.org", to: ["b@example.com"], id });
    const headerBytes = (id: string) =>
      Buffer.byteLength(
        `NATS/1.0\r\n${natsMailHeaders(id, envelope(id))
          .map(([name, value]) => `${name}: ${value}\r\n`)
          .join("")}\r\n`,
      );
    const fits = Buffer.alloc(maxPayload - headerBytes("edge-fits"), 0x61);
    const over = Buffer.alloc(maxPayload - headerBytes("edge-over") + 1, 0x62);
    await sink.deliver(envelope("edge-fits"), chunks(fits.subarray(0, 1000), fits.subarray(1000)));
    await sink.deliver(envelope("edge-over"), chunks(over));

    const [inline, claimed] = await readStream(nats.jsm, names.stream);
    assert.ok(inline && claimed);
    assert.deepEqual(Buffer.from(inline.data), fits);
    assert.equal(readNatsMailHeaders(headersOf(inline)).claimCheck, null);
    assert.equal(claimed.data.length, 0, "a claim check has an empty body");
    assert.deepEqual(readNatsMailHeaders(headersOf(claimed)).claimCheck, {
      bucket: names.bucket,
      name: "edge-over",
      size: over.length,
    });
    assert.equal(claimed.header?.get(NATS_HEADERS.objectBucket), names.bucket);
  });

  test("options are checked at construction, and no credential appears in messages", async () => {
    assert.throws(() => new NatsSink({ servers: "http://x" }), /nats:\/\/ or tls:\/\//);
    assert.throws(() => new NatsSink({ servers: NATS_URL, subject: "mail.{rcpt}" }), /unknown placeholder/);
    assert.throws(() => new NatsSink({ servers: NATS_URL, subject: "mail.*" }), /not a NATS subject/);
    assert.throws(() => new NatsSink({ servers: NATS_URL, window: 0 }), /window/);
    assert.throws(
      () => new NatsSink({ servers: NATS_URL, subject: "{domain}", declare: { stream: "S" } }),
      /declare.subjects/,
    );
    assert.throws(
      () => new NatsSink({ servers: NATS_URL, token: "t", user: "u", pass: "p" }),
      /one of token/,
    );
    const sink = new NatsSink({ servers: "nats://user:s3cret@127.0.0.1:1", connectTimeout: 1000 });
    assert.equal(sink.redactedServers, "127.0.0.1:1");
    await assert.rejects(sink.start(), (error: Error) => {
      assert.match(error.message, /^Cannot start the NATS sink at 127\.0\.0\.1:1: /);
      assert.equal(error.message.includes("s3cret"), false);
      return true;
    });
    await sink.close();
  });
});
