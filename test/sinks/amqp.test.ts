/** AmqpSink against the real RabbitMQ: a round trip through an SMTP session, and an unroutable message. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AMQP_HEADERS, AmqpSink, envelopeFromAmqpHeaders, SmtpError } from "../../src/index.js";
import { silentLogger } from "../helpers/clients.js";
import { BROKER_URL, brokerOrSkip, cleanUpAfter, drainQueue } from "./amqp-broker.js";
import { ehloClient, queuedId, sendOne, startSinkServer, uniqueName } from "./sink-server.js";

async function* chunks(...buffers: Buffer[]): AsyncGenerator<Buffer> {
  yield* buffers;
}

describe("AmqpSink", () => {
  test("a message sent over SMTP arrives byte-exact with its envelope and session facts", async (t) => {
    const broker = await brokerOrSkip(t);
    if (!broker) return;
    const exchange = uniqueName("rt");
    const queue = `${exchange}-q`;
    cleanUpAfter(t, { queue, exchange });
    const sink = await AmqpSink.open({
      url: BROKER_URL,
      exchange,
      routingKey: "mail.{domain}",
      declare: { exchangeType: "topic", queue, bindingKey: "mail.#" },
      logger: silentLogger,
    });
    t.after(() => sink.close());
    assert.equal(sink.state, "connected");
    assert.equal(sink.maxMessageSize, 128 * 1024 * 1024);
    const port = await startSinkServer(t, sink);

    const client = await ehloClient(port);
    t.after(() => client.close());
    const recipients = ["Rcpt@Example.COM", "josé@exämple.de", "second@example.net"];
    const message = Buffer.from(
      "From: Sender <s@example.org>\r\nTo: José <josé@exämple.de>\r\nSubject: Grüße\r\n\r\nÜnïcödé body\r\n.. stuffed\r\n",
      "utf8",
    );
    // The client dot-stuffs; what the sink sees (and publishes) has the dot removed.
    const reply = await sendOne(client, "sender@example.org", recipients, message, { smtputf8: true });
    const id = queuedId(reply);
    assert.ok(id, `250 with an id, got ${reply}`);

    const [received, ...more] = await drainQueue(broker.channel, queue);
    assert.ok(received, "the message is in the queue");
    assert.equal(more.length, 0);
    const expected = Buffer.from(
      message.toString("latin1").replace("\r\n.. stuffed", "\r\n. stuffed"),
      "latin1",
    );
    assert.deepEqual(received.content, expected, "byte-exact body");
    assert.equal(
      received.fields.routingKey,
      "mail.example.com",
      "{domain} of the first recipient, lower-cased",
    );
    const { properties } = received;
    assert.equal(properties.messageId, id);
    assert.equal(properties.contentType, "message/rfc822");
    assert.equal(properties.deliveryMode, 2, "persistent");
    assert.ok(Math.abs(properties.timestamp - Date.now() / 1000) < 120, "timestamp in seconds");
    const headers = properties.headers ?? {};
    assert.equal(headers[AMQP_HEADERS.from], "sender@example.org");
    assert.deepEqual(headers[AMQP_HEADERS.to], recipients, "every recipient, UTF-8 intact, in RCPT order");
    assert.equal(headers[AMQP_HEADERS.clientAddress], "127.0.0.1");
    assert.equal(typeof headers[AMQP_HEADERS.clientPort], "number");
    assert.equal(headers[AMQP_HEADERS.helo], "client.test");
    assert.equal(headers[AMQP_HEADERS.smtputf8], true);
    assert.equal(headers[AMQP_HEADERS.body], "");
    assert.equal(headers[AMQP_HEADERS.tlsProtocol], undefined, "no TLS, no TLS headers");
    assert.equal(headers[AMQP_HEADERS.authenticatedAs], undefined, "no AUTH, no AUTH header");
    assert.deepEqual(envelopeFromAmqpHeaders(headers, properties.messageId), {
      from: "sender@example.org",
      to: recipients,
      id,
    });
  });

  test("an unroutable message (mandatory, no binding) gets 451 and is not taken as accepted", async (t) => {
    const broker = await brokerOrSkip(t);
    if (!broker) return;
    const exchange = uniqueName("unroutable");
    cleanUpAfter(t, { exchange });
    const sink = await AmqpSink.open({
      url: BROKER_URL,
      exchange,
      declare: { exchangeType: "direct" }, // the exchange only: nothing bound to it
      logger: silentLogger,
    });
    t.after(() => sink.close());

    // Directly: the delivery rejects with an SmtpError 451 4.3.0.
    const direct = sink.deliver(
      { from: "a@example.org", to: ["b@example.com"] },
      chunks(Buffer.from("x\r\n")),
    );
    await assert.rejects(direct, (error: unknown) => {
      assert.ok(error instanceof SmtpError);
      assert.equal(error.code, 451);
      assert.equal(error.enhancedCode, "4.3.0");
      assert.match(error.message, /NO_ROUTE/);
      return true;
    });

    // Through a session: the client hears 451 and the sink is still usable.
    const port = await startSinkServer(t, sink);
    const client = await ehloClient(port);
    t.after(() => client.close());
    const reply = await sendOne(
      client,
      "a@example.org",
      ["b@example.com"],
      Buffer.from("Subject: x\r\n\r\nx\r\n"),
    );
    assert.match(reply, /^451 4\.3\.0 /);
    assert.equal(queuedId(reply), null);
    assert.equal(sink.state, "connected");
    assert.equal(sink.inFlight, 0);
  });

  test("options are checked at construction, and the password never appears in messages", async () => {
    assert.throws(() => new AmqpSink({ url: "http://x", exchange: "" }), /amqp:\/\/ or amqps:\/\//);
    assert.throws(
      () => new AmqpSink({ url: "amqp://u:p@h", exchange: "", routingKey: "{rcpt}" }),
      /unknown placeholder \{rcpt\}/,
    );
    assert.throws(() => new AmqpSink({ url: "amqp://u:p@h", exchange: "", window: 0 }), /window/);
    const sink = new AmqpSink({
      url: "amqp://user:s3cret@127.0.0.1:1/vh",
      exchange: "",
      connectTimeout: 2000,
    });
    assert.equal(sink.redactedUrl.includes("s3cret"), false);
    await assert.rejects(sink.start(), (error: Error) => {
      assert.match(error.message, /^Cannot connect to RabbitMQ at amqp:\/\/user:\*\*\*@127\.0\.0\.1:1\/vh/);
      assert.equal(error.message.includes("s3cret"), false);
      return true;
    });
    await sink.close();
  });
});
