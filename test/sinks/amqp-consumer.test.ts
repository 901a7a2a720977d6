/** examples/amqp-consumer: what AmqpSink published over SMTP, the consumer writes to a Maildir byte-exact. */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { consumeIntoStore } from "../../examples/amqp-consumer.js";
import { AmqpSink, MaildirStore, parseEnvelopeHeaders } from "../../src/index.js";
import { silentLogger, waitFor } from "../helpers/clients.js";
import { BROKER_URL, brokerOrSkip, cleanUpAfter } from "./amqp-broker.js";
import { ehloClient, queuedId, sendOne, startSinkServer, uniqueName } from "./sink-server.js";

test("examples/amqp-consumer stores every published message in a Maildir with its envelope", async (t) => {
  const broker = await brokerOrSkip(t);
  if (!broker) return;
  const exchange = uniqueName("consumer");
  const queue = `${exchange}-q`;
  cleanUpAfter(t, { queue, exchange });
  const directory = await mkdtemp(join(tmpdir(), "mailgate-amqp-consumer-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  const sink = await AmqpSink.open({ url: BROKER_URL, exchange, declare: { queue }, logger: silentLogger });
  t.after(() => sink.close());
  const port = await startSinkServer(t, sink);

  const sent = [
    { from: "", to: ["a@example.com"], body: "Subject: bounce\r\n\r\nnull sender\r\n" },
    {
      from: "ünï@exämple.org",
      to: ["josé@exämple.de", "b@example.com", "c@example.net"],
      body: "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\n8-bit body: Grüße\r\n",
    },
  ];
  const client = await ehloClient(port);
  t.after(() => client.close());
  const ids = new Map<string, (typeof sent)[number]>();
  for (const message of sent) {
    const reply = await sendOne(client, message.from, message.to, Buffer.from(message.body), {
      smtputf8: true,
    });
    const id = queuedId(reply);
    assert.ok(id, reply);
    ids.set(id, message);
  }

  const store = await MaildirStore.open(directory);
  t.after(() => store.close());
  const consumer = await consumeIntoStore(BROKER_URL, queue, store, {
    onError: (error) => assert.fail(error),
  });
  t.after(() => consumer.stop());
  await waitFor(() => consumer.stored === sent.length, "the consumer to store both messages", 10_000);

  const files = await readdir(join(directory, "new"));
  assert.equal(files.length, sent.length);
  const stored = await Promise.all(files.map((file) => readFile(join(directory, "new", file))));
  for (const message of sent) {
    const file = stored.find((bytes) => parseEnvelopeHeaders(bytes).envelope.from === message.from);
    assert.ok(file, `a file for <${message.from}>`);
    const { envelope, bodyOffset } = parseEnvelopeHeaders(file);
    assert.deepEqual(envelope.to, message.to, "every recipient, in order");
    assert.deepEqual(file.subarray(bodyOffset), Buffer.from(message.body), "byte-exact");
  }
  const queueState = await broker.channel.checkQueue(queue);
  assert.equal(queueState.messageCount, 0, "every message acknowledged");
});
