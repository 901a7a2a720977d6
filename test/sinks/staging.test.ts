/**
 * Staging (src/sinks/staging.ts): a sink gets a streamed message only once it was received whole into a
 * file, so that slow clients hold disk space, not the sink's window or memory. Unit tests with a store
 * that records what it is given, then `mailgate serve`'s own composition (openSink, createStoringServer)
 * in front of an HTTP sink whose whole window slow clients used to hold.
 */
import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { parseServeFlags } from "../../src/cli/flags.js";
import { openSink } from "../../src/cli/open-sink.js";
import { createStoringServer } from "../../src/cli/serve.js";
import { SinkUnavailable } from "../../src/sinks/sink-error.js";
import { stagingStore } from "../../src/sinks/staging.js";
import { StagedMessage } from "../../src/store/staged-message.js";
import type { DeliveryReceipt, MessageStore, StoreEnvelope } from "../../src/store/store.js";
import { WholeMessage } from "../../src/store/whole-message.js";
import { RawClient, silentLogger } from "../helpers/clients.js";
import { SECRET, startReceiver } from "./http-helpers.js";

const ENVELOPE: StoreEnvelope = { from: "a@x.test", to: ["b@y.test"], id: "M1" };

/** A store that records each message it is given, read whole, and when. */
function recordingStore() {
  const given: { message: AsyncIterable<Buffer>; bytes: Buffer; at: number }[] = [];
  let closed = false;
  const store: MessageStore = {
    async deliver(envelope, message): Promise<DeliveryReceipt> {
      const at = performance.now();
      const chunks: Buffer[] = [];
      for await (const chunk of message) chunks.push(chunk);
      const bytes = Buffer.concat(chunks);
      given.push({ message, bytes, at });
      return { id: envelope.id ?? "", location: "recorded", size: bytes.length };
    },
    async close() {
      closed = true;
    },
  };
  return { store, given, closed: () => closed };
}

async function parentDirectory(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const parent = await mkdtemp(join(tmpdir(), "mailgate-staging-test-"));
  t.after(() => rm(parent, { recursive: true, force: true }));
  return parent;
}

test("a streamed message reaches the store only once it has ended, from a file deleted afterwards", async (t) => {
  const parent = await parentDirectory(t);
  const { store, given, closed } = recordingStore();
  const staged = await stagingStore(store, parent);
  const [directory] = await readdir(parent);
  assert.match(directory ?? "", new RegExp(`^mailgate-stage-${process.pid}@`));

  const stream = new PassThrough();
  const delivery = staged.deliver(ENVELOPE, stream);
  stream.write(Buffer.alloc(100_000, "a"));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(given.length, 0, "nothing reaches the store while the client sends");
  const ended = performance.now();
  stream.end(Buffer.from("tail"));
  const receipt = await delivery;

  assert.equal(receipt.size, 100_004);
  assert.equal(given.length, 1);
  const [first] = given;
  assert.ok(first && first.at >= ended);
  assert.ok(first.message instanceof StagedMessage);
  assert.equal(first.message.size, 100_004);
  assert.equal(first.bytes.subarray(-4).toString(), "tail");
  assert.deepEqual(await readdir(join(parent, directory as string)), [], "the file is gone");

  // A message whole in memory goes straight through.
  const whole = new WholeMessage(Buffer.from("small"));
  await staged.deliver(ENVELOPE, whole);
  assert.equal(given[1]?.message, whole);

  await staged.close?.();
  assert.ok(closed());
  assert.deepEqual(await readdir(parent), [], "the staging directory is removed at close");
});

test("a staging directory of this host left by a process that is gone is removed at the next open; nothing else is", async (t) => {
  const parent = await parentDirectory(t);
  const host = hostname();
  const victim = await mkdtemp(join(tmpdir(), "mailgate-staging-victim-"));
  t.after(() => rm(victim, { recursive: true, force: true }));
  await writeFile(join(victim, "kept"), "not mailgate's");
  const gone = `mailgate-stage-2147483646@${host}-abcdef`; // no such pid
  const alive = `mailgate-stage-${process.ppid}@${host}-abcdef`;
  const otherHost = `mailgate-stage-2147483646@not-${host}-abcdef`;
  const notPrivate = `mailgate-stage-2147483645@${host}-abcdef`; // mode 0755: not one of ours
  for (const [name, mode] of [
    [gone, 0o700],
    [alive, 0o700],
    [otherHost, 0o700],
    [notPrivate, 0o755],
  ] as const) {
    await mkdir(join(parent, name), { mode });
    await chmod(join(parent, name), mode);
    await writeFile(join(parent, name, "1"), "a part of a message");
  }
  // A link named like an orphan, to a directory of someone else's: never followed, never removed.
  const link = `mailgate-stage-2147483644@${host}-abcdef`;
  await symlink(victim, join(parent, link));
  const staged = await stagingStore(recordingStore().store, parent);
  const names = await readdir(parent);
  assert.ok(!names.includes(gone));
  for (const kept of [alive, otherHost, notPrivate, link]) assert.ok(names.includes(kept), kept);
  assert.deepEqual(await readdir(victim), ["kept"]);
  await staged.close?.();
});

test("a message that fails while it is received never reaches the store, and leaves no file", async (t) => {
  const parent = await parentDirectory(t);
  const { store, given } = recordingStore();
  const staged = await stagingStore(store, parent);
  const stream = new PassThrough();
  stream.on("error", () => {}); // as the session's message stream: the consumer learns of it when it reads
  const delivery = staged.deliver(ENVELOPE, stream);
  stream.write(Buffer.alloc(10_000, "a"));
  const aborted = new Error("the client went away");
  stream.destroy(aborted);
  await assert.rejects(delivery, (error) => error === aborted);
  assert.equal(given.length, 0);
  const [directory] = await readdir(parent);
  assert.deepEqual(await readdir(join(parent, directory as string)), []);
  await staged.close?.();
});

test("a staging directory removed while serving is made again; one that cannot be made is a 451 of the sink's kind", async (t) => {
  const parent = await parentDirectory(t);
  const { store, given } = recordingStore();
  const staged = await stagingStore(store, parent);
  const deliver = () => {
    const stream = new PassThrough();
    const delivery = staged.deliver(ENVELOPE, stream);
    stream.end(Buffer.alloc(1000, "a"));
    return delivery;
  };
  const [directory] = await readdir(parent);
  await rm(join(parent, directory as string), { recursive: true }); // as a cleaner of /tmp would
  assert.equal((await deliver()).size, 1000);
  assert.equal(given.length, 1);

  // The parent itself gone and a file in its place: nothing can be staged; the store is not called.
  await rm(parent, { recursive: true });
  await writeFile(parent, "");
  await assert.rejects(
    deliver(),
    (error) =>
      error instanceof SinkUnavailable &&
      error.code === 451 &&
      error.message.includes(`cannot make a directory in ${parent}: ENOTDIR`),
  );
  assert.equal(given.length, 1);
  await rm(parent);
  await staged.close?.();
});

test("complete staged messages are handed over within maxBytes at once; the others wait in their files, then 451", async (t) => {
  const parent = await parentDirectory(t);
  const releases: (() => void)[] = [];
  const started: number[] = [];
  const holding: MessageStore = {
    async deliver(envelope, message) {
      const size = (message as StagedMessage).size;
      started.push(size);
      await new Promise<void>((resolve) => releases.push(resolve));
      return { id: envelope.id ?? "", location: "held", size };
    },
  };
  const staged = await stagingStore(holding, parent, { maxBytes: 250_000, waitTimeout: 500 });
  const deliver = (bytes: number) => {
    const stream = new PassThrough();
    const delivery = staged.deliver(ENVELOPE, stream);
    stream.end(Buffer.alloc(bytes, "a"));
    return delivery;
  };
  const first = deliver(100_000);
  const second = deliver(100_000);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const third = deliver(100_000); // 300,000 would be with the store: it waits
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.deepEqual(started, [100_000, 100_000]);
  releases.shift()?.(); // the first is done: room for the third
  await first;
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(started.length, 3);
  // No room within waitTimeout: 451, and its file is gone.
  await assert.rejects(
    deliver(100_000),
    (error) => error instanceof SinkUnavailable && /no room/.test(error.message),
  );
  for (const release of releases.splice(0)) release();
  await Promise.all([second, third]);
  const [directory] = await readdir(parent);
  assert.deepEqual(await readdir(join(parent, directory as string)), []);
  await staged.close?.();
});

test("mailgate serve --sink http: clients that send large messages slowly no longer hold the sink's window", async (t) => {
  const receiver = await startReceiver(t);
  const parent = await parentDirectory(t);
  const env = { ...process.env, MAILGATE_SINK_SECRET: SECRET };
  const flags = parseServeFlags(
    [
      "--sink",
      receiver.url,
      "--sink-window",
      "2",
      "--sink-publish-timeout",
      "1000",
      "--sink-stage-dir",
      parent,
    ],
    env,
  ).sink;
  assert.ok(flags);
  const { store } = await openSink(flags, env, silentLogger);
  t.after(() => store.close?.());
  const server = createStoringServer(
    { hosts: "127.0.0.1", ports: 0, logger: silentLogger, loggerSeverity: "fatal" },
    store,
  );
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  const port = server.ports[0] as number;

  const begin = async (client: RawClient) => {
    await client.command("EHLO x.test");
    await client.command("MAIL FROM:<a@x.test>");
    await client.command("RCPT TO:<b@y.test>");
    assert.match(await client.command("DATA"), /^354 /);
  };
  // As many slow clients as the window has places, each 200 KB into its message (past the HTTP sink's own
  // 128 KB, after which it used to take a place and stream) and then silent.
  const slow = await Promise.all([RawClient.greeted(port), RawClient.greeted(port)]);
  t.after(() => {
    for (const client of slow) client.close();
  });
  for (const client of slow) {
    await begin(client);
    await client.send(`Subject: slow\r\n\r\n${"x".repeat(998)}\r\n`.repeat(200));
  }
  await new Promise((resolve) => setTimeout(resolve, 300));

  // Before staging: this waited 1 s for a place, then got 451 4.3.0.
  const client = await RawClient.greeted(port);
  await begin(client);
  assert.match(await client.command("Subject: hi\r\n\r\nbody\r\n."), /^250 2\.0\.0 /);
  client.close();
  assert.equal((await receiver.messages()).length, 1);
});
