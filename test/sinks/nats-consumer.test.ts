/**
 * examples/nats-consumer: what NatsSink published over SMTP, claim-checked or not, the consumer writes to a
 * Maildir byte-exact with every recipient, acknowledges, and deletes the claim-checked objects.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Objm } from "@nats-io/obj";
import { consumeStreamIntoStore } from "../../examples/nats-consumer.js";
import { MaildirStore, parseEnvelopeHeaders } from "../../src/index.js";
import { waitFor } from "../helpers/clients.js";
import { NATS_URL, natsOrSkip, openStreamSink, uniqueStream } from "./nats-broker.js";
import { ehloClient, queuedId, sendOne, startSinkServer } from "./sink-server.js";

test("examples/nats-consumer stores every published message in a Maildir with its envelope", async (t) => {
  const nats = await natsOrSkip(t);
  if (!nats) return;
  const names = uniqueStream(t, "consumer");
  const directory = await mkdtemp(join(tmpdir(), "mailgate-nats-consumer-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  const sink = await openStreamSink(t, names);
  const port = await startSinkServer(t, sink, { maxMessageSize: 16 * 1024 * 1024 });

  const line = `${"8-bit ü line ".repeat(5)}\r\n`;
  const sent = [
    { from: "", to: ["a@example.com"], body: "Subject: bounce\r\n\r\nnull sender\r\n" },
    {
      from: "ünï@exämple.org",
      to: ["josé@exämple.de", "b@example.com", "c@example.net"],
      body: "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\n8-bit body: Grüße\r\n",
    },
    {
      from: "big@example.org",
      to: ["d@example.com", "e@example.org"],
      body: `Subject: three megabytes, by claim check\r\n\r\n${line.repeat(Math.ceil((3 * 1024 * 1024) / line.length))}`,
    },
  ];
  const client = await ehloClient(port);
  t.after(() => client.close());
  for (const message of sent) {
    const reply = await sendOne(client, message.from, message.to, Buffer.from(message.body), {
      smtputf8: true,
      timeoutMs: 30_000,
    });
    assert.ok(queuedId(reply), reply);
  }
  const objects = await new Objm(nats.nc).open(names.bucket);
  assert.equal((await objects.list()).length, 1, "the large message is in the bucket");

  const store = await MaildirStore.open(directory);
  t.after(() => store.close());
  const consumer = await consumeStreamIntoStore({ servers: NATS_URL }, names.stream, "maildir", store, {
    onError: (error) => assert.fail(error),
  });
  t.after(() => consumer.stop());
  await waitFor(() => consumer.stored === sent.length, "the consumer to store every message", 20_000);

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
  const info = await nats.jsm.consumers.info(names.stream, "maildir");
  assert.equal(info.num_ack_pending, 0, "every message acknowledged");
  assert.equal(info.num_pending, 0);
  assert.equal((await objects.list()).length, 0, "the consumer deleted the object after its ack");
});
