/** `mailgate serve` hands its store the message's id (the one in its Received header) and the session's facts. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createStoringServer } from "../../src/cli/serve.js";
import type { DeliveryReceipt, MessageStore, StoreEnvelope } from "../../src/store/store.js";
import { WholeMessage } from "../../src/store/whole-message.js";
import { RawClient, silentLogger } from "../helpers/clients.js";

test("the store gets the Received header's id and the session's facts with every message", async (t) => {
  const delivered: { envelope: StoreEnvelope; bytes: Buffer }[] = [];
  const store: MessageStore = {
    async deliver(envelope, message): Promise<DeliveryReceipt> {
      const chunks: Buffer[] = [];
      for await (const chunk of message) chunks.push(chunk);
      delivered.push({ envelope, bytes: Buffer.concat(chunks) });
      return { id: "x", location: "memory", size: 0 };
    },
  };
  const server = createStoringServer(
    { hosts: "127.0.0.1", ports: "0", hostname: "mx.test", loggerSeverity: "fatal" },
    store,
  );
  Object.assign(server, { logger: silentLogger });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  const client = await RawClient.greeted(server.ports[0] as number);
  t.after(() => client.close());
  await client.command("EHLO client.test");
  for (let i = 0; i < 2; i++) {
    await client.command("MAIL FROM:<a@client.test>");
    await client.command("RCPT TO:<b@mx.test>");
    await client.command("DATA");
    assert.match(await client.command("Subject: x\r\n\r\nhi\r\n."), /^250 /);
  }
  assert.equal(delivered.length, 2);
  const [first, second] = delivered;
  assert.ok(first && second);
  const receivedId = /^Received: [\s\S]*? id ([0-9A-Z]+)\r\n/.exec(first.bytes.toString("latin1"))?.[1];
  assert.equal(first.envelope.id, receivedId);
  assert.notEqual(first.envelope.id, second.envelope.id);
  assert.deepEqual(first.envelope.session, {
    clientAddress: "127.0.0.1",
    clientPort: client.socket.localPort,
    clientName: "127.0.0.1",
    helo: "client.test",
    tls: null,
    authenticatedAs: null,
    smtputf8: false,
    body: "",
  });
});

test("a message within --buffer-messages-up-to reaches the store whole, a bigger one streamed; both byte-exact", async (t) => {
  const delivered: { whole: boolean; bytes: Buffer; id: string | undefined }[] = [];
  const store: MessageStore = {
    async deliver(envelope, message): Promise<DeliveryReceipt> {
      const chunks: Buffer[] = [];
      for await (const chunk of message) chunks.push(chunk);
      delivered.push({
        whole: message instanceof WholeMessage,
        bytes: Buffer.concat(chunks),
        id: envelope.id,
      });
      return { id: envelope.id ?? "", location: "memory", size: 0 };
    },
  };
  const server = createStoringServer(
    { hosts: "127.0.0.1", ports: "0", hostname: "mx.test", loggerSeverity: "fatal", logger: silentLogger },
    store,
  );
  assert.equal(server.settings.bufferMessagesUpTo, 65536, "mailgate serve's own default");
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  const client = await RawClient.greeted(server.ports[0] as number);
  t.after(() => client.close());
  await client.command("EHLO client.test");
  const bodies = [1000, 70_000, 500].map((size, i) =>
    `Subject: ${i}\r\n\r\n${"x".repeat(76)}\r\n`.repeat(size / 80),
  );
  for (const body of bodies) {
    await client.command("MAIL FROM:<a@client.test>");
    await client.command("RCPT TO:<b@mx.test>");
    await client.command("DATA");
    assert.match(await client.command(`${body}.`), /^250 2\.0\.0 Ok: stored as [0-9A-Z]+/);
  }
  assert.deepEqual(
    delivered.map((d) => d.whole),
    [true, false, true],
    "the 70 KB message was streamed, the others handed over whole",
  );
  delivered.forEach((d, i) => {
    const text = d.bytes.toString("latin1");
    assert.match(text, /^Received: /);
    assert.ok(text.endsWith(bodies[i] as string), `message ${i} byte-exact after its Received header`);
    assert.match(text, new RegExp(` id ${d.id}\\r\\n`));
  });
});
