/**
 * `mailgate serve` hands a store that reads whole messages (MessageStore.readsWholeMessages) the buffered
 * message in one piece, and any other store a stream: the same bytes (its Received header first), the
 * same 250.
 */
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { test } from "node:test";
import { createStoringServer } from "../../src/cli/serve.js";
import type { DeliveryReceipt, MessageStore } from "../../src/store/store.js";
import { WholeMessage } from "../../src/store/whole-message.js";
import { RawClient, silentLogger } from "../helpers/clients.js";

for (const readsWholeMessages of [true, false]) {
  test(`a store ${readsWholeMessages ? "that reads whole messages gets a WholeMessage" : "that streams gets a Readable"}, with the same bytes and 250`, async (t) => {
    const received: { message: AsyncIterable<Buffer>; chunks: Buffer[] }[] = [];
    const store: MessageStore = {
      readsWholeMessages,
      async deliver(_envelope, message): Promise<DeliveryReceipt> {
        const chunks: Buffer[] = [];
        for await (const chunk of message) chunks.push(chunk);
        received.push({ message, chunks });
        return { id: "M1", location: "memory", size: 0 };
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
    await client.command("MAIL FROM:<a@client.test>");
    await client.command("RCPT TO:<b@mx.test>");
    await client.command("DATA");
    assert.equal(await client.command("Subject: x\r\n\r\nhi\r\n..\r\n."), "250 2.0.0 Ok: stored as M1\r\n");
    const [delivery] = received;
    assert.ok(delivery);
    assert.ok(
      readsWholeMessages ? delivery.message instanceof WholeMessage : delivery.message instanceof Readable,
    );
    if (readsWholeMessages) assert.equal(delivery.chunks.length, 1, "one piece");
    assert.match(
      Buffer.concat(delivery.chunks).toString("latin1"),
      /^Received: from client\.test [\s\S]*\r\nSubject: x\r\n\r\nhi\r\n\.\r\n$/,
    );
  });
}
