/**
 * A 200 MB message through onMessageStream with a slow consumer: the bytes arrive exactly (count and
 * sha256 on both sides) and the process's memory stays bounded, because backpressure reaches the client.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { once } from "node:events";
import type { Socket } from "node:net";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { RawClient, startRecordingServer } from "../helpers/clients.js";

const MiB = 1024 * 1024;
const BLOCKS = 200; // of 1 MiB of message content each
const CHUNK = 64 * 1024;

/**
 * One MiB of message lines (the logical content) and the same lines dot-stuffed for the wire. The
 * first line carries a block number at a fixed offset, so that every block differs.
 */
function blockTemplates(): { logical: Buffer; wire: Buffer; counterOffset: number } {
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-_=+/\t\u00e9";
  const lines: string[] = ["block 0000000000"];
  let size = Buffer.byteLength(`${lines[0]}\r\n`);
  while (size < MiB - 300) {
    const length = random() % 120;
    let line = "";
    for (let i = 0; i < length; i++) line += alphabet[random() % alphabet.length];
    if (random() % 50 === 0) line = `.${line}`; // leading dots are stuffed on the wire
    if (random() % 500 === 0) line = ".";
    lines.push(line);
    size += Buffer.byteLength(`${line}\r\n`);
  }
  lines.push("x".repeat(MiB - size - 2));
  const logical = Buffer.from(lines.map((line) => `${line}\r\n`).join(""));
  const wire = Buffer.from(lines.map((line) => `${line.startsWith(".") ? "." : ""}${line}\r\n`).join(""));
  assert.equal(logical.length, MiB);
  return { logical, wire, counterOffset: "block ".length };
}

/** Writes `data` in CHUNK-sized pieces, waiting for 'drain' whenever the socket asks for it. */
async function writeWithBackpressure(socket: Socket, data: Buffer, onWait: () => void): Promise<void> {
  for (let offset = 0; offset < data.length; offset += CHUNK) {
    if (!socket.write(data.subarray(offset, offset + CHUNK))) {
      onWait();
      await once(socket, "drain");
    }
  }
}

test("a 200 MB message through a slow onMessageStream hook: exact bytes, bounded memory", async (t) => {
  const received = { bytes: 0, chunks: 0, hash: createHash("sha256") };
  let dataSeen = -1;
  let pausedAt = 0;
  const { port } = await startRecordingServer(t, {
    maxMessageSize: 0,
    ioCmdTimeout: 30_000,
    async onMessageStream(_ctx, stream) {
      for await (const chunk of stream) {
        received.hash.update(chunk as Buffer);
        received.bytes += (chunk as Buffer).length;
        received.chunks++;
        // A slow consumer, slower than loopback: 4 ms per MiB, at most some 250 MB/s.
        while (received.bytes >= pausedAt + MiB) {
          pausedAt += MiB;
          await delay(4);
        }
      }
      return "Ok: streamed";
    },
    onMessageData(ctx) {
      dataSeen = ctx.message.data.length;
    },
  });

  const client = await RawClient.greeted(port);
  t.after(() => client.close());
  assert.match(await client.command("EHLO client.test"), /^250 /m);
  assert.match(await client.command("MAIL FROM:<a@x.test> BODY=8BITMIME"), /^250 /);
  assert.match(await client.command("RCPT TO:<b@y.test>"), /^250 /);
  assert.match(await client.command("DATA"), /^354 /);

  const { logical, wire, counterOffset } = blockTemplates();
  const header = Buffer.from("From: a@x.test\r\nTo: b@y.test\r\nSubject: big\r\n\r\n");
  const sent = { bytes: header.length, hash: createHash("sha256").update(header), waits: 0 };
  const rssBefore = process.memoryUsage().rss;
  let rssMax = rssBefore;
  const sample = () => {
    rssMax = Math.max(rssMax, process.memoryUsage().rss);
  };
  const socket = client.socket;
  await writeWithBackpressure(socket, header, sample);
  for (let block = 0; block < BLOCKS; block++) {
    const counter = String(block).padStart(10, "0");
    logical.write(counter, counterOffset, "latin1");
    wire.write(counter, counterOffset, "latin1");
    sent.hash.update(logical);
    sent.bytes += logical.length;
    // The socket may still hold earlier pieces of `wire`: write a copy that nobody changes.
    await writeWithBackpressure(socket, Buffer.from(wire), () => {
      sent.waits++;
      sample();
    });
    sample();
  }
  socket.write(".\r\n");
  assert.equal(await client.reply(60_000), "250 2.0.0 Ok: streamed\r\n");
  sample();

  assert.equal(received.bytes, sent.bytes);
  assert.equal(received.bytes, BLOCKS * MiB + header.length);
  assert.equal(received.hash.digest("hex"), sent.hash.digest("hex"));
  assert.equal(dataSeen, 0, "ctx.message.data stays empty when the message is streamed");
  assert.ok(sent.waits > 0, "the slow consumer made the client wait");
  const growth = rssMax - rssBefore;
  assert.ok(growth < 100 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MB`);
  assert.equal(await client.command("QUIT"), "221 2.0.0 mx.test Service closing transmission channel\r\n");
});
