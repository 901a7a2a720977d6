/**
 * SmtpServer over loopback: binding (port 0, several hosts, a busy port, a duplicate address), graceful
 * and immediate stop, the state getters, maxConnections, maxProcessings, the command deadline (idle,
 * slowloris, DATA trickle) and flow control against a client that never reads its replies.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";
import { networkInterfaces } from "node:os";
import { type TestContext, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Connection } from "../../src/server/connection.js";
import { SmtpServer, type SmtpServerOptions } from "../../src/server/server.js";
import { RawClient, silentLogger, startRecordingServer, waitFor } from "../helpers/clients.js";

const QUIET: SmtpServerOptions = { hostname: "mx.test", logger: silentLogger, loggerSeverity: "fatal" };

function hasIPv6Loopback(): boolean {
  return Object.values(networkInterfaces())
    .flat()
    .some((info) => info?.address === "::1");
}

/** A listening plain TCP server (to make a port busy), or undefined when `host` cannot be bound. */
async function occupy(t: TestContext, host: string, port = 0): Promise<Server | undefined> {
  const server = createServer((socket) => socket.destroy());
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port }, () => resolve());
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EADDRNOTAVAIL") return undefined;
    throw error;
  }
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return server;
}

function portOf(server: Server): number {
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  return address.port;
}

/** A port that was free on `host` a moment ago. */
async function freePort(host: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen({ host, port: 0 }, () => resolve()));
  const port = portOf(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Nothing listens on host:port: a connection is refused. */
async function assertRefused(host: string, port: number): Promise<void> {
  await assert.rejects(RawClient.connect(port, host), { code: "ECONNREFUSED" });
}

/** The server side of the open connections (private state, read for white-box checks only). */
function connectionsOf(server: SmtpServer): Connection[] {
  return [...(server as unknown as { open: Set<Connection> }).open];
}

function startServer(t: TestContext, options: SmtpServerOptions): SmtpServer {
  const server = new SmtpServer({ ...QUIET, ...options });
  t.after(() => server.stop({ gracefully: false }));
  return server;
}

async function openTransaction(client: RawClient): Promise<void> {
  assert.match(await client.command("EHLO client.test"), /^250 /m);
  assert.match(await client.command("MAIL FROM:<a@x.test>"), /^250 /);
  assert.match(await client.command("RCPT TO:<b@y.test>"), /^250 /);
  assert.match(await client.command("DATA"), /^354 /);
}

test("port 0: start() resolves with the real port in addresses and ports", async (t) => {
  const server = startServer(t, { hosts: "127.0.0.1", ports: "0" });
  assert.deepEqual(server.addresses, []);
  assert.deepEqual(server.ports, [0], "before start: the configured port");
  await server.start();
  const port = server.ports[0] ?? 0;
  assert.ok(port > 0 && port < 65536, `real port ${port}`);
  assert.deepEqual(server.addresses, [`127.0.0.1:${port}`]);
  assert.deepEqual(server.hosts, ["127.0.0.1"]);
  const client = await RawClient.connect(port);
  assert.equal(await client.reply(), "220 mx.test ESMTP mailgate ready\r\n");
  assert.equal(await client.command("QUIT"), "221 2.0.0 mx.test Service closing transmission channel\r\n");
  await client.untilEnd();
  await assert.rejects(server.start(), /already started/);
});

test('hosts "127.0.0.1, ::1" with port 0 bind one ephemeral port each, both served', async (t) => {
  if (!hasIPv6Loopback()) {
    t.skip("this machine has no ::1 loopback address");
    return;
  }
  const server = startServer(t, { hosts: "127.0.0.1, ::1", ports: "0" });
  await server.start();
  assert.equal(server.addresses.length, 2);
  const [v4, v6] = server.addresses;
  assert.match(v4 ?? "", /^127\.0\.0\.1:\d+$/);
  assert.match(v6 ?? "", /^\[::1\]:\d+$/);
  assert.deepEqual(server.hosts, ["127.0.0.1", "::1"]);
  for (const address of server.addresses) {
    const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
    assert.ok(match);
    const [, host = "", port = ""] = match;
    assert.notEqual(Number(port), 0);
    const client = await RawClient.greeted(Number(port), host);
    assert.match(await client.command("EHLO client.test"), /^250 /m);
    client.close();
  }
});

test("a busy port makes start() reject, and the listeners already opened are closed again", async (t) => {
  const blocker = await occupy(t, "127.0.0.2");
  if (blocker === undefined) {
    t.skip("127.0.0.2 cannot be bound here (Linux routes all of 127/8 to lo; this system does not)");
    return;
  }
  const busy = portOf(blocker);
  const free = await freePort("127.0.0.1");
  const server = startServer(t, { hosts: "127.0.0.1, 127.0.0.2", ports: `${free}, ${busy}` });
  await assert.rejects(server.start(), (error: Error) => {
    assert.match(error.message, /already in use/);
    assert.ok(error.message.includes(`127.0.0.2:${busy}`), error.message);
    return true;
  });
  assert.deepEqual(server.addresses, []);
  assert.equal(server.isStopped, true);
  assert.equal(server.isShuttingDown, false);
  // 127.0.0.1:free was bound before the failure: it must be free again.
  await assertRefused("127.0.0.1", free);
  const probe = await occupy(t, "127.0.0.1", free);
  assert.ok(probe, `127.0.0.1:${free} can be bound again`);
  await new Promise<void>((resolve) => probe.close(() => resolve()));

  // Once the other program is gone, the same server starts.
  await new Promise<void>((resolve) => blocker.close(() => resolve()));
  await server.start();
  assert.deepEqual(server.addresses, [`127.0.0.1:${free}`, `127.0.0.2:${busy}`]);
  const client = await RawClient.greeted(busy, "127.0.0.2");
  client.close();
  await server.stop();
  await assertRefused("127.0.0.1", free);
  await assertRefused("127.0.0.2", busy);
});

test("a busy port in a multi-port item on one host rejects and leaves the other port free", async (t) => {
  const blocker = await occupy(t, "127.0.0.1");
  assert.ok(blocker);
  const busy = portOf(blocker);
  const free = await freePort("127.0.0.1");
  const server = startServer(t, { hosts: "127.0.0.1", ports: `${free}:${busy}` });
  await assert.rejects(server.start(), /127\.0\.0\.1:\d+: the address is already in use/);
  assert.deepEqual(server.addresses, []);
  await assertRefused("127.0.0.1", free);
});

test("a duplicate listen address rejects start() and binds nothing", async (t) => {
  const free = await freePort("127.0.0.1");
  for (const [hosts, ports] of [
    ["127.0.0.1, 127.0.0.1", `${free}`],
    ["127.0.0.1", `${free}:${free}`],
    ["::1, 0:0:0:0:0:0:0:1", `${free}`],
  ] as const) {
    const server = startServer(t, { hosts, ports });
    await assert.rejects(server.start(), (error: Error) => {
      assert.match(error.message, /given twice/);
      assert.match(error.message, /already be in use/);
      return true;
    });
    assert.deepEqual(server.addresses, []);
    assert.equal(server.isStopped, true);
    await assertRefused("127.0.0.1", free);
  }
  // Port 0 is a fresh port on every bind: repeating it is no duplicate.
  const server = startServer(t, { hosts: "127.0.0.1, 127.0.0.1", ports: "0" });
  await server.start();
  assert.equal(server.addresses.length, 2);
  assert.notEqual(server.addresses[0], server.addresses[1]);
});

test("graceful stop: an idle client gets 421 at once, a client inside DATA finishes (250) then gets 421", async (t) => {
  const { server, port, messages } = await startRecordingServer(t);
  const busy = await RawClient.greeted(port);
  await openTransaction(busy);
  busy.write("Subject: graceful\r\n\r\npart one\r\n");
  const idle = await RawClient.greeted(port);
  assert.match(await idle.command("EHLO client.test"), /^250 /m);

  const stopping = server.stop({ timeout: 10_000 });
  assert.equal(server.isShuttingDown, true);
  assert.equal(server.isStopped, false);
  assert.equal(
    await idle.reply(),
    "421 4.3.2 mx.test Service shutting down, closing transmission channel\r\n",
  );
  assert.equal(await idle.untilEnd(), "");
  await assertRefused("127.0.0.1", port);

  assert.equal(await busy.silentFor(100), true, "the transaction is not interrupted");
  busy.write("part two\r\n.\r\n");
  assert.equal(await busy.reply(), "250 2.0.0 Ok: message accepted\r\n");
  assert.equal(
    await busy.reply(),
    "421 4.3.2 mx.test Service shutting down, closing transmission channel\r\n",
  );
  assert.equal(await busy.untilEnd(), "");
  await stopping;
  assert.equal(server.isStopped, true);
  assert.equal(server.isShuttingDown, false);
  assert.equal(messages.length, 1);
  assert.equal(messages[0]?.data.toString(), "Subject: graceful\r\n\r\npart one\r\npart two\r\n");
});

test("graceful stop: a transaction still running at the timeout gets 421", async (t) => {
  const { server, port, messages } = await startRecordingServer(t);
  const busy = await RawClient.greeted(port);
  await openTransaction(busy);
  busy.write("Subject: slow\r\n\r\nnever finished\r\n");
  const started = Date.now();
  const stopping = server.stop({ timeout: 300 });
  assert.match(await busy.reply(), /^421 4\.3\.2 /);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 250 && elapsed < 3000, `421 after ${elapsed} ms`);
  await busy.untilEnd();
  await stopping;
  assert.equal(messages.length, 0);
});

test("stop({ gracefully: false }) answers 421 to everyone at once, even inside DATA", async (t) => {
  const { server, port, messages } = await startRecordingServer(t);
  const busy = await RawClient.greeted(port);
  await openTransaction(busy);
  busy.write("Subject: cut\r\n\r\npart one\r\n");
  const idle = await RawClient.greeted(port);
  const started = Date.now();
  const stopping = server.stop({ gracefully: false });
  for (const client of [busy, idle]) {
    assert.equal(
      await client.reply(),
      "421 4.3.2 mx.test Service shutting down, closing transmission channel\r\n",
    );
    assert.equal(await client.untilEnd(), "");
  }
  await stopping;
  assert.ok(Date.now() - started < 1000);
  assert.equal(server.isStopped, true);
  assert.equal(messages.length, 0);
});

test("isStopped, isShuttingDown, connections and processings over the lifecycle; restart", async (t) => {
  let disconnects = 0;
  const server = startServer(t, {
    hosts: "127.0.0.1",
    ports: "0",
    onDisconnect() {
      disconnects++;
    },
  });
  const state = () => [server.isStopped, server.isShuttingDown, server.connections, server.processings];
  assert.deepEqual(state(), [true, false, 0, 0]);
  await server.start();
  assert.deepEqual(state(), [false, false, 0, 0]);
  const port = server.ports[0] ?? 0;
  const a = await RawClient.greeted(port);
  const b = await RawClient.greeted(port);
  assert.deepEqual(state(), [false, false, 2, 2]);
  assert.match(await a.command("QUIT"), /^221 /);
  await a.untilEnd();
  await waitFor(() => disconnects === 1, "the server to see the QUIT client go");
  assert.deepEqual(state(), [false, false, 1, 1]);

  const stopping = server.stop();
  // The idle session got its 421 at once: it is over (no slot), its socket not yet closed.
  assert.deepEqual(state(), [false, true, 1, 0]);
  assert.match(await b.reply(), /^421 /);
  await stopping;
  assert.deepEqual(state(), [true, false, 0, 0]);
  assert.equal(disconnects, 2);
  assert.deepEqual(server.addresses, []);
  await server.stop(); // stopping a stopped server does nothing

  await server.start();
  assert.deepEqual(state(), [false, false, 0, 0]);
  const again = await RawClient.greeted(server.ports[0] ?? 0);
  assert.deepEqual(state(), [false, false, 1, 1]);
  again.close();
  await server.stop();
  assert.deepEqual(state(), [true, false, 0, 0]);
});

test("maxConnections: the connection beyond the limit gets 421 and is closed, the others are served", async (t) => {
  const { server, port } = await startRecordingServer(t, { maxConnections: 2, maxProcessings: 2 });
  const a = await RawClient.greeted(port);
  const b = await RawClient.greeted(port);
  const c = await RawClient.connect(port);
  assert.equal(await c.reply(), "421 4.7.0 mx.test Service too busy or not available, try again later\r\n");
  assert.equal(await c.untilEnd(), "");
  assert.equal(server.connections, 2);
  for (const client of [a, b]) {
    assert.match(await client.command("EHLO client.test"), /^250 /m);
    assert.match(await client.command("NOOP"), /^250 /);
  }
  assert.match(await a.command("QUIT"), /^221 /);
  await a.untilEnd();
  await waitFor(() => server.connections === 1, "the QUIT connection to be released");
  const d = await RawClient.greeted(port);
  assert.match(await d.command("NOOP"), /^250 /);
  assert.match(await b.command("NOOP"), /^250 /);
});

test("maxProcessings: a session beyond the limit gets no greeting until a slot frees", async (t) => {
  const { server, port } = await startRecordingServer(t, { maxProcessings: 1 });
  const a = await RawClient.greeted(port);
  const b = await RawClient.connect(port);
  const c = await RawClient.connect(port);
  await waitFor(() => server.connections === 3, "the server to accept the waiting clients");
  assert.equal(server.processings, 1);
  assert.equal(await b.silentFor(200), true, "no greeting while the slot is taken");
  assert.equal(c.pending, "");

  // A waiting client that gives up is forgotten.
  c.close();
  await waitFor(() => server.connections === 2, "the waiting client to be released");
  assert.equal(server.processings, 1);

  assert.match(await a.command("QUIT"), /^221 /);
  assert.equal(await b.reply(), "220 mx.test ESMTP mailgate ready\r\n");
  assert.match(await b.command("EHLO client.test"), /^250 /m);
  await waitFor(() => server.connections === 1, "the QUIT client to be released");
  assert.equal(server.processings, 1);
});

test("a client that never closes after 221: its slot serves the next client at once, its socket goes after 5 s", async (t) => {
  const { server, port } = await startRecordingServer(t, { maxProcessings: 1, ioCmdTimeout: 60_000 });
  // allowHalfOpen: the client's side stays open after the server's FIN, as a careless client's would.
  const careless = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  t.after(() => careless.destroy());
  let replies = "";
  careless.on("data", (chunk) => {
    replies += chunk;
  });
  await waitFor(() => replies.startsWith("220 "), "the greeting");
  const waiting = await RawClient.connect(port);
  await waitFor(() => server.connections === 2, "the server to accept the waiting client");
  assert.equal(await waiting.silentFor(200), true, "no greeting while the slot is taken");
  careless.write("QUIT\r\n");
  await once(careless, "end");
  assert.equal(await waiting.reply(2_000), "220 mx.test ESMTP mailgate ready\r\n");
  assert.deepEqual([server.connections, server.processings], [2, 1]);
  // The lingering socket is destroyed after 5 s, not at the 60 s command deadline.
  const started = Date.now();
  await waitFor(() => server.connections === 1, "the careless connection to be released", 10_000);
  const lingered = Date.now() - started;
  assert.ok(lingered > 3_000 && lingered < 8_000, `released after ${lingered} ms`);
});

test("stop() answers 421 to a client still waiting for a processing slot", async (t) => {
  const { server, port } = await startRecordingServer(t, { maxProcessings: 1 });
  const served = await RawClient.greeted(port);
  const waiting = await RawClient.connect(port);
  await waitFor(() => server.connections === 2, "the server to accept the waiting client");
  const stopping = server.stop();
  assert.equal(
    await waiting.reply(),
    "421 4.3.2 mx.test Service shutting down, closing transmission channel\r\n",
  );
  assert.match(await served.reply(), /^421 4\.3\.2 /);
  await Promise.all([waiting.untilEnd(), served.untilEnd()]);
  await stopping;
  assert.deepEqual([server.connections, server.processings], [0, 0]);
});

test("ioCmdTimeout: a client that sends nothing gets 421 4.4.2 at the deadline", async (t) => {
  const { port } = await startRecordingServer(t, { ioCmdTimeout: 300 });
  const client = await RawClient.greeted(port);
  const started = Date.now();
  assert.equal(await client.reply(3000), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 250 && elapsed < 2000, `cut after ${elapsed} ms`);
  assert.equal(await client.untilEnd(), "");
});

test("ioCmdTimeout is per command: a client that keeps sending commands is not cut", async (t) => {
  const { port } = await startRecordingServer(t, { ioCmdTimeout: 300 });
  const client = await RawClient.greeted(port);
  const started = Date.now();
  for (let i = 0; i < 8; i++) {
    assert.equal(await client.silentFor(100), true);
    assert.equal(await client.command("NOOP"), "250 2.0.0 Ok\r\n");
  }
  assert.ok(Date.now() - started > 600, "longer than one deadline in all");
});

/** Sends `text` one byte every 100 ms until the server answers or closes; returns ms until then. */
async function trickle(client: RawClient, text: string): Promise<number> {
  const started = Date.now();
  for (let i = 0; i < text.length; i++) {
    if (!(await client.silentFor(100))) return Date.now() - started;
    client.write(text[i] ?? "");
  }
  throw new Error(`the server let ${text.length} bytes trickle in over ${Date.now() - started} ms`);
}

test("ioCmdTimeout is a deadline: a slowloris sending one byte per 100 ms is cut", async (t) => {
  const { port } = await startRecordingServer(t, { ioCmdTimeout: 300 });
  const client = await RawClient.greeted(port);
  const elapsed = await trickle(client, "NOOP ".repeat(10));
  assert.ok(elapsed >= 250 && elapsed < 1000, `cut after ${elapsed} ms`);
  assert.equal(await client.reply(), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
  await client.untilEnd();
});

test("a DATA trickle below minDataRate is cut at the deadline too", async (t) => {
  const { port, messages } = await startRecordingServer(t, { ioCmdTimeout: 300, minDataRate: 500 });
  const client = await RawClient.greeted(port);
  await openTransaction(client);
  const elapsed = await trickle(client, "Subject: slow\r\n\r\n".repeat(5));
  assert.ok(elapsed >= 250 && elapsed < 1000, `cut after ${elapsed} ms`);
  assert.equal(await client.reply(), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
  await client.untilEnd();
  assert.equal(messages.length, 0);
});

const MiB = 1024 * 1024;

/** Heap and Buffer memory still referenced: measured after a full garbage collection. */
function retainedMemory(): number {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  const { heapUsed, external } = process.memoryUsage();
  return heapUsed + external;
}

/** Resolves true on 'drain', false when none comes within `ms`. */
async function drained(socket: Socket, ms: number): Promise<boolean> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  try {
    await once(socket, "drain", { signal: controller.signal });
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

test("a client that never reads its replies is throttled: the server stops reading, buffers stay bounded", async (t) => {
  const { server, port } = await startRecordingServer(t, { ioCmdTimeout: 20_000 });
  const socket = connect({ port, host: "127.0.0.1" });
  t.after(() => socket.destroy());
  const [greeting] = (await once(socket, "data")) as [Buffer];
  assert.match(greeting.toString(), /^220 /);
  socket.pause(); // from now on the client reads nothing
  const [connection] = connectionsOf(server);
  assert.ok(connection);
  const session = connection.session as unknown as { input: { bytes: Buffer } };

  const LINES_PER_CHUNK = 10_000;
  const chunk = Buffer.from("RSET\r\n".repeat(LINES_PER_CHUNK));
  const retainedBefore = retainedMemory();
  const rssBefore = process.memoryUsage().rss;
  let rssMax = rssBefore;
  let maxServerBuffered = 0;
  let chunks = 0;
  // The client writes with backpressure until the server, its replies unread, stops reading. A missing
  // 'drain' alone proves nothing (loopback TCP may be waiting for a retransmission): the server side must
  // have paused its socket. Bounded: the kernel's socket buffers hold a few MB, far less than 120 MB.
  const deadline = Date.now() + 20_000;
  for (;;) {
    assert.ok(chunks < 2000, `the server kept reading: ${chunks} chunks of ${chunk.length} bytes`);
    assert.ok(Date.now() < deadline, `the server neither read nor paused (${chunks} chunks sent)`);
    maxServerBuffered = Math.max(maxServerBuffered, connection.socket.writableLength);
    rssMax = Math.max(rssMax, process.memoryUsage().rss);
    if (!socket.writableNeedDrain) {
      socket.write(chunk);
      chunks++;
    } else if (!(await drained(socket, 200)) && connection.socket.isPaused()) {
      break;
    }
  }
  // Paused for good: nothing more is read while the client does not read.
  const bytesRead = connection.socket.bytesRead;
  assert.equal(
    await new Promise((resolve) => setTimeout(() => resolve(connection.socket.bytesRead), 300)),
    bytesRead,
  );
  assert.equal(connection.socket.isPaused(), true, "the server still does not read");
  maxServerBuffered = Math.max(maxServerBuffered, connection.socket.writableLength);
  assert.ok(maxServerBuffered < MiB, `server write buffer peaked at ${maxServerBuffered} bytes`);
  assert.ok(session.input.bytes.length < MiB, `server input buffer ${session.input.bytes.length} bytes`);
  // What the process holds after a full GC did not grow: nothing piles up. Peak RSS also counts the
  // V8 heap's growth from parsing ~1M commands quickly (garbage, freed by the GC), so its bound is looser.
  const retainedGrowth = retainedMemory() - retainedBefore;
  assert.ok(retainedGrowth < 8 * MiB, `retained memory grew by ${(retainedGrowth / MiB).toFixed(1)} MB`);
  const rssGrowth = rssMax - rssBefore;
  assert.ok(rssGrowth < 150 * MiB, `RSS grew by ${(rssGrowth / MiB).toFixed(1)} MB`);

  // The session is still alive: once the client reads, every reply arrives, in order, and QUIT works.
  const REPLY = "250 2.0.0 Ok\r\n";
  const expected = chunks * LINES_PER_CHUNK * REPLY.length;
  const pattern = Buffer.from(REPLY.repeat(Math.ceil((128 * 1024) / REPLY.length) + 1));
  let received = 0;
  let tail = "";
  let quitSent = false;
  const done = new Promise<void>((resolve, reject) => {
    socket.on("data", (data: Buffer) => {
      let offset = 0;
      while (offset < data.length && received < expected) {
        const take = Math.min(data.length - offset, expected - received, 64 * 1024);
        const at = received % REPLY.length;
        if (!data.subarray(offset, offset + take).equals(pattern.subarray(at, at + take))) {
          reject(new Error(`unexpected reply bytes after ${received} bytes`));
          return;
        }
        offset += take;
        received += take;
      }
      tail += data.subarray(offset).toString("latin1");
      if (received === expected && !quitSent) {
        quitSent = true;
        socket.write("QUIT\r\n");
      }
      if (tail.includes("\r\n")) resolve();
    });
    socket.once("close", () => reject(new Error(`closed after ${received} of ${expected} reply bytes`)));
  });
  socket.resume();
  await done;
  assert.equal(tail, "221 2.0.0 mx.test Service closing transmission channel\r\n");
});
