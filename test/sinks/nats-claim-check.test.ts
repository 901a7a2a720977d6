/**
 * The NATS sink's claim check: a 50 MB message sent over SMTP (BDAT) reaches the Object Store byte-exact
 * while the sink streams it (live memory stays far below the message's size), and the stream message
 * carries the reference. A message past maxMessageSize gets 552 and leaves no object behind.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Objm } from "@nats-io/obj";
import { readNatsMailHeaders, SmtpError } from "../../src/index.js";
import { natsOrSkip, openStreamSink, readStream, uniqueStream } from "./nats-broker.js";
import { ehloClient, queuedId, startSinkServer } from "./sink-server.js";

const MB = 1024 * 1024;
const CHUNKS = 50;

// A full collection before each sample: otherwise garbage not yet collected (freed socket chunks) hides
// what is really held. --expose-gc, set at run time, as node --test cannot pass it.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

test("a 50 MB message goes by claim check: streamed into the bucket, byte-exact, memory flat", async (t) => {
  const nats = await natsOrSkip(t);
  if (!nats) return;
  const names = uniqueStream(t, "big");
  const sink = await openStreamSink(t, names, { declare: { bucketTtl: 3_600_000 } });
  const port = await startSinkServer(t, sink, { maxMessageSize: 64 * MB });
  const client = await ehloClient(port);
  t.after(() => client.close());
  assert.match(await client.command("MAIL FROM:<big@example.org> BODY=BINARYMIME"), /^250 /);
  assert.match(await client.command("RCPT TO:<rcpt@example.com>"), /^250 /);
  assert.match(await client.command("RCPT TO:<second@example.net>"), /^250 /);

  const live = () => {
    const usage = process.memoryUsage();
    return usage.heapUsed + usage.external;
  };
  gc();
  const baseline = live();
  let peak = baseline;
  const sampler = setInterval(() => {
    gc();
    peak = Math.max(peak, live());
  }, 50);
  t.after(() => clearInterval(sampler));
  // One buffer for every chunk, refilled once the server has taken the previous one: the test's own
  // garbage would otherwise dwarf what the sink holds.
  const hash = createHash("sha256");
  const chunk = Buffer.alloc(MB);
  let reply = "";
  for (let index = 0; index < CHUNKS; index++) {
    chunk.fill(index % 251);
    if (index === 0) chunk.write("Subject: fifty megabytes\r\n\r\n");
    hash.update(chunk);
    await client.send(`BDAT ${MB}${index === CHUNKS - 1 ? " LAST" : ""}\r\n`);
    await client.send(chunk);
    reply = await client.reply(60_000);
    assert.match(reply, /^250 /);
  }
  clearInterval(sampler);
  const id = queuedId(reply);
  assert.ok(id, reply);
  const grown = peak - baseline;
  t.diagnostic(`live memory grew by ${(grown / MB).toFixed(1)} MB at most while 50 MB went through`);
  assert.ok(grown < 20 * MB, `the sink streams the message (live memory grew ${(grown / MB).toFixed(1)} MB)`);
  assert.equal(sink.heldBytes, 0);

  const [stored, ...more] = await readStream(nats.jsm, names.stream);
  assert.ok(stored);
  assert.equal(more.length, 0);
  assert.equal(stored.data.length, 0);
  const headers = readNatsMailHeaders((name) => stored.header?.get(name) || undefined);
  assert.equal(headers.id, id);
  assert.deepEqual(headers.envelope.to, ["rcpt@example.com", "second@example.net"]);
  assert.deepEqual(headers.claimCheck, { bucket: names.bucket, name: id, size: CHUNKS * MB });

  const objects = await new Objm(nats.nc).open(names.bucket);
  const status = await objects.status();
  assert.equal(status.ttl, 3_600_000 * 1_000_000, "the bucket's TTL mailgate set");
  const body = await objects.getBlob(id);
  assert.ok(body);
  assert.equal(body.length, CHUNKS * MB);
  assert.equal(createHash("sha256").update(body).digest("hex"), hash.digest("hex"), "byte-exact");
});

test("a message past maxMessageSize gets 552 while streaming, and its object is gone", async (t) => {
  const nats = await natsOrSkip(t);
  if (!nats) return;
  const names = uniqueStream(t, "toobig");
  const sink = await openStreamSink(t, names, { maxMessageSize: 3 * MB });
  let chunksRead = 0;
  async function* fourMegabytes(): AsyncGenerator<Buffer> {
    for (let index = 0; index < 64; index++) {
      chunksRead += 1;
      yield Buffer.alloc(64 * 1024, 0x61);
    }
  }
  await assert.rejects(
    sink.deliver({ from: "a@example.org", to: ["b@example.com"], id: "too-big-1" }, fourMegabytes()),
    (error: unknown) => error instanceof SmtpError && error.code === 552 && error.enhancedCode === "5.3.4",
  );
  assert.ok(chunksRead <= 49, `reading stopped at the limit (${chunksRead} chunks of 64 KiB)`);
  assert.equal((await readStream(nats.jsm, names.stream)).length, 0);
  const objects = await new Objm(nats.nc).open(names.bucket);
  assert.equal(await objects.info("too-big-1"), null, "no object left behind");
  const status = await objects.status();
  assert.equal(status.size, 0, "no chunk left behind");
  assert.equal(sink.inFlight, 0);
});
