/**
 * Resource abuse over real sockets, beyond what test/protocol/session.test.ts (transcripts) and
 * test/server/lifecycle.test.ts (limits, deadlines, flow control) cover:
 *
 * - 300 connections at once against maxConnections 50, in waves: each excess one gets exactly the 421
 *   and is closed, the server's retained memory does not grow, and a client already admitted completes
 *   its transaction meanwhile;
 * - abrupt disconnects (FIN and RST) at every protocol state leak nothing: connections and processings
 *   return to 0, every started session gets its onDisconnect, no internal error is logged, a half-sent
 *   message is never delivered (to onMessageData, to an onMessageStream consumer, which must see an error
 *   and never 'end', or into the Maildir of `mailgate serve`, where tmp/ must end empty), and a normal
 *   client is served afterwards (two more tests reproduce a crash found here: a drop right after the
 *   354, before the store read its stream, raised an uncaught 'error');
 * - a client that half-closes after a complete pipelined transaction and QUIT still gets its 250 and
 *   221 (the message is delivered once);
 * - a 200 KB line inside DATA arrives byte-exact, through onMessageData and into the Maildir;
 * - 5 MB without a newline from 20 clients over real sockets: each gets 421 4.7.0 after ioBufferMaxSize
 *   and is closed, and memory stays flat.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, type TestContext, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createStoringServer } from "../../src/cli/serve.js";
import { SmtpServer, type SmtpServerOptions } from "../../src/server/server.js";
import { MaildirStore } from "../../src/store/maildir.js";
import { RawClient, silentLogger, startRecordingServer, waitFor } from "../helpers/clients.js";
import {
  checkStoredFile,
  dotStuff,
  listTmp,
  readMaildirNew,
  seededRandom,
  sleep,
  startServe,
} from "./harness.js";

const MiB = 1024 * 1024;
const TOO_BUSY = "421 4.7.0 mx.test Service too busy or not available, try again later\r\n";
const LINE_TOO_LONG = "421 4.7.0 mx.test Error: line too long, closing connection\r\n";

/** Heap and Buffer memory still referenced: measured after a full garbage collection. */
function retainedMemory(): number {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  gc();
  const { heapUsed, external } = process.memoryUsage();
  return heapUsed + external;
}

async function transaction(client: RawClient, message: string | Buffer): Promise<string> {
  client.write("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
  for (const code of ["250 ", "250 ", "354 "]) {
    const reply = await client.reply();
    assert.ok(reply.startsWith(code), `expected ${code}, got ${JSON.stringify(reply)}`);
  }
  client.write(message);
  return client.reply();
}

/** A complete, normal transaction on a new connection: the server still serves. */
async function assertServes(port: number): Promise<void> {
  const client = await RawClient.greeted(port);
  assert.match(await client.command("EHLO normal.test"), /^250 /m);
  assert.match(await transaction(client, "Subject: normal\r\n\r\nstill served\r\n.\r\n"), /^250 2\.0\.0 /);
  assert.match(await client.command("QUIT"), /^221 /);
  await client.untilEnd();
}

describe("connections far beyond maxConnections", () => {
  test("300 at once, three times, against 50: each excess one gets 421, memory flat, the admitted client completes", async (t) => {
    const { server, port, messages } = await startRecordingServer(t, {
      maxConnections: 50,
      maxProcessings: 50,
    });
    const held = await Promise.all(Array.from({ length: 49 }, () => RawClient.greeted(port)));
    const worker = await RawClient.greeted(port);
    assert.match(await worker.command("EHLO worker.test"), /^250 /m);
    worker.write("MAIL FROM:<w@x.test>\r\nRCPT TO:<v@y.test>\r\nDATA\r\n");
    for (const code of ["250 ", "250 ", "354 "]) assert.ok((await worker.reply()).startsWith(code));
    assert.equal(server.connections, 50);

    const baseline = retainedMemory();
    const growth: number[] = [];
    const WAVES = 5;
    for (let wave = 0; wave < WAVES; wave++) {
      const replies = await Promise.all(
        Array.from({ length: 300 }, async () => {
          const client = await RawClient.connect(port);
          const reply = await client.reply();
          const rest = await client.untilEnd();
          return reply + rest;
        }),
      );
      assert.deepEqual(
        new Set(replies),
        new Set([TOO_BUSY]),
        "every excess connection: the 421, then closed",
      );
      // The admitted client goes on in the middle of the flood.
      worker.write(`Subject: worker\r\n\r\npart ${wave}\r\n`);
      assert.equal(server.connections, 50);
      growth.push(retainedMemory() - baseline);
    }
    worker.write(".\r\n");
    assert.equal(await worker.reply(), "250 2.0.0 Ok: message accepted\r\n");
    assert.equal(messages.length, 1);
    assert.equal(
      messages[0]?.data.toString(),
      Array.from({ length: WAVES }, (_, wave) => `Subject: worker\r\n\r\npart ${wave}\r\n`).join(""),
    );
    t.diagnostic(
      `retained memory after each wave of 300: ${growth.map((b) => `${(b / 1024).toFixed(0)} KiB`)}`,
    );
    // From the first wave to the last, 1200 more refusals: a leaked socket (several KiB each) would show
    // as several MiB; V8's own caches move the figure by a few hundred KiB at most.
    const leak = (growth[WAVES - 1] ?? 0) - (growth[0] ?? 0);
    assert.ok(leak < 1.5 * MiB, `retained memory grew by ${leak} bytes over ${(WAVES - 1) * 300} refusals`);

    for (const client of [...held, worker]) client.close();
    await waitFor(() => server.connections === 0 && server.processings === 0, "the server to be idle");
    const late = await RawClient.greeted(port);
    assert.match(await late.command("EHLO late.test"), /^250 /m);
    assert.equal(
      await transaction(late, "Subject: late\r\n\r\nserved\r\n.\r\n"),
      "250 2.0.0 Ok: message accepted\r\n",
    );
  });
});

// ---- abrupt disconnects ----------------------------------------------------------------------------

interface DropCase {
  state: string;
  /** Brings a fresh connection to the state (it may write without reading), then the test drops it. */
  reach(client: RawClient, subject: string): Promise<void>;
  /** The message may be delivered: its end of data was sent. */
  complete?: boolean;
}

const EHLO = async (client: RawClient) => {
  assert.equal((await client.reply()).slice(0, 4), "220 ");
  assert.match(await client.command("EHLO drop.test"), /^250 /m);
};
const IN_DATA = async (client: RawClient) => {
  await EHLO(client);
  assert.match(await client.command("MAIL FROM:<a@x.test>"), /^250 /);
  assert.match(await client.command("RCPT TO:<b@y.test>"), /^250 /);
  assert.match(await client.command("DATA"), /^354 /);
};
/** Lets the server read and handle what was written before the connection is dropped. */
const settle = () => sleep(30);
const BIG_BODY = "z".repeat(78).concat("\r\n").repeat(4000); // 320 KB

const DROP_CASES: DropCase[] = [
  { state: "before the greeting", reach: async () => {} },
  { state: "after the greeting", reach: async (c) => void (await c.reply()) },
  { state: "after EHLO", reach: EHLO },
  {
    state: "in the middle of a command line",
    reach: async (c) => {
      await EHLO(c);
      c.write("MAIL FROM:<a@x.");
      await settle();
    },
  },
  {
    state: "after MAIL",
    reach: async (c) => {
      await EHLO(c);
      assert.match(await c.command("MAIL FROM:<a@x.test>"), /^250 /);
    },
  },
  {
    state: "after RCPT",
    reach: async (c) => {
      await EHLO(c);
      assert.match(await c.command("MAIL FROM:<a@x.test>"), /^250 /);
      assert.match(await c.command("RCPT TO:<b@y.test>"), /^250 /);
    },
  },
  {
    state: "with a pipelined MAIL, RCPT, DATA unanswered",
    reach: async (c) => {
      await EHLO(c);
      c.write("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
    },
  },
  { state: "after the 354", reach: IN_DATA },
  {
    state: "in DATA, in the middle of a line",
    reach: async (c, subject) => {
      await IN_DATA(c);
      c.write(`Subject: ${subject}\r\n\r\nhalf a li`);
      await settle();
    },
  },
  {
    state: "in DATA, at the end of a line",
    reach: async (c, subject) => {
      await IN_DATA(c);
      c.write(`Subject: ${subject}\r\n\r\na whole line\r\n`);
      await settle();
    },
  },
  {
    state: "in DATA, after CRLF dot",
    reach: async (c, subject) => {
      await IN_DATA(c);
      c.write(`Subject: ${subject}\r\n\r\nalmost\r\n.`);
      await settle();
    },
  },
  {
    state: "in DATA, after CRLF dot CR",
    reach: async (c, subject) => {
      await IN_DATA(c);
      c.write(`Subject: ${subject}\r\n\r\nalmost\r\n.\r`);
      await settle();
    },
  },
  {
    state: "in DATA, 320 KB of a bigger message sent",
    reach: async (c, subject) => {
      await IN_DATA(c);
      c.write(`Subject: ${subject}\r\n\r\n${BIG_BODY}`);
      await settle();
    },
  },
  {
    state: "right after the final dot, the reply unread",
    complete: true,
    reach: async (c, subject) => {
      await IN_DATA(c);
      c.write(`Subject: ${subject}\r\n\r\n${BIG_BODY}.\r\n`);
    },
  },
];

interface Probe {
  port: number;
  /** The messages delivered so far (a file in new/ that is not complete fails the test). */
  delivered(): Promise<Buffer[]>;
  /** Waits until the server has forgotten every connection and checks what it leaked or logged. */
  settled(t: TestContext, connections: number): Promise<void>;
}

/** Hooks that count sessions and collect error logs (an internal error is a bug, whatever the client). */
function watchers() {
  const counts = { connects: 0, disconnects: 0 };
  const errors: string[] = [];
  const hooks: SmtpServerOptions = {
    onConnect() {
      counts.connects++;
    },
    onDisconnect() {
      counts.disconnects++;
    },
    onLogging(_ctx, severity, message) {
      if (severity === "error" || severity === "fatal") errors.push(message);
    },
  };
  /** connections and processings back to 0, one onDisconnect per session, no error logged. */
  const settled = async (server: SmtpServer, connections: number) => {
    await waitFor(
      () => server.connections === 0 && server.processings === 0,
      "connections and processings to return to 0",
    );
    await waitFor(() => counts.disconnects === counts.connects, "every session's onDisconnect");
    assert.equal(counts.connects, connections, "every connection got its session");
    assert.deepEqual(errors, [], "no internal error logged");
  };
  return { hooks, settled };
}

function subjectOf(data: Buffer): string {
  return /^Subject: (\S+)/.exec(data.toString("latin1", 0, 200))?.[1] ?? "?";
}

/** In-process, onMessageData: the message is buffered and handed over whole. */
async function bufferedProbe(t: TestContext): Promise<Probe> {
  const { hooks, settled } = watchers();
  const { server, port, messages } = await startRecordingServer(t, hooks);
  return {
    port,
    delivered: async () => messages.map((m) => m.data),
    settled: (_t, connections) => settled(server, connections),
  };
}

/**
 * In-process, onMessageStream reading from its first moment: a half-sent message must end its stream
 * with an error, never with 'end' (a consumer that sees 'end' stores the message).
 */
async function streamProbe(t: TestContext): Promise<Probe> {
  const { hooks, settled } = watchers();
  const completed: Buffer[] = [];
  let failed = 0;
  let running = 0;
  const server = new SmtpServer({
    hosts: "127.0.0.1",
    ports: "0",
    hostname: "mx.test",
    logger: silentLogger,
    ...hooks,
    async onMessageStream(_ctx, stream) {
      running++;
      const chunks: Buffer[] = [];
      try {
        for await (const chunk of stream) chunks.push(chunk as Buffer);
        completed.push(Buffer.concat(chunks));
      } catch (error) {
        failed++;
        throw error;
      } finally {
        running--;
      }
    },
  });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  return {
    port: server.ports[0] ?? 0,
    delivered: async () => completed,
    settled: async (t, connections) => {
      await settled(server, connections);
      await waitFor(() => running === 0, "every stream consumer to finish");
      t.diagnostic(`${completed.length} streams ended normally, ${failed} with an error`);
    },
  };
}

/** `mailgate serve` as a child process, storing into a Maildir: tmp/ must end empty, the process alive. */
async function serveProbe(t: TestContext): Promise<Probe> {
  const dir = await mkdtemp(join(tmpdir(), "mailgate-drop-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const served = await startServe(join(dir, "mail"));
  t.after(() => {
    if (served.child.exitCode === null && served.child.signalCode === null) served.child.kill("SIGKILL");
  });
  const maildir = join(dir, "mail");
  const alive = () => {
    assert.equal(
      served.child.exitCode,
      null,
      `mailgate serve died: ${served.output().split("\n").slice(-20).join("\n")}`,
    );
  };
  return {
    port: served.port,
    delivered: async () => {
      alive();
      return (await readMaildirNew(maildir)).map((file) => {
        assert.equal(file.problem, "", `${file.name} is a complete message`);
        return file.clientBytes;
      });
    },
    settled: async () => {
      await sleep(100);
      alive();
      // The store removes the temporary file of an abandoned message as its stream fails.
      const deadline = Date.now() + 5000;
      while ((await listTmp(maildir)).length > 0 && Date.now() < deadline) await sleep(10);
      assert.deepEqual(await listTmp(maildir), [], "nothing left in tmp/");
    },
  };
}

/** Runs every drop case with FIN and with RST, 3 times each, all at once; checks what got delivered. */
async function dropEverywhere(t: TestContext, probe: Probe): Promise<void> {
  const subjects = new Map<string, DropCase>();
  const runs: Promise<void>[] = [];
  for (const [index, dropCase] of DROP_CASES.entries()) {
    for (const reset of [false, true]) {
      for (let n = 0; n < 3; n++) {
        const subject = `drop-${index}-${reset ? "rst" : "fin"}-${n}`;
        subjects.set(subject, dropCase);
        runs.push(
          (async () => {
            const client = await RawClient.connect(probe.port);
            await dropCase.reach(client, subject);
            if (reset) client.socket.resetAndDestroy();
            else client.close();
          })(),
        );
      }
    }
  }
  const outcomes = await Promise.allSettled(runs);
  await probe.settled(t, runs.length); // first: a dead server explains failed runs best
  for (const outcome of outcomes) if (outcome.status === "rejected") throw outcome.reason;
  const messages = await probe.delivered();
  const delivered = messages.map(subjectOf);
  for (const [index, subject] of delivered.entries()) {
    const dropCase = subjects.get(subject);
    // The only complete message the cases send must arrive as sent.
    if (dropCase?.complete) {
      const data = messages[index]?.toString("latin1");
      assert.equal(data, `Subject: ${subject}\r\n\r\n${BIG_BODY}`, `the bytes of ${subject}`);
    }
    assert.ok(
      dropCase?.complete,
      `"${subject}" (${dropCase?.state}) was delivered although it was not complete`,
    );
  }
  assert.equal(new Set(delivered).size, delivered.length, "nothing delivered twice");
  t.diagnostic(`${delivered.length} of 6 messages dropped right after their final dot were delivered anyway`);
  await assertServes(probe.port);
}

describe("abrupt disconnects at every protocol state leak nothing", () => {
  test(`onMessageData (buffered): FIN and RST in ${DROP_CASES.length} states, 3 times each`, async (t) => {
    await dropEverywhere(t, await bufferedProbe(t));
  });

  test(`onMessageStream (streamed): FIN and RST in ${DROP_CASES.length} states, 3 times each`, async (t) => {
    await dropEverywhere(t, await streamProbe(t));
  });

  test(`mailgate serve (Maildir): FIN and RST in ${DROP_CASES.length} states, 3 times each`, async (t) => {
    await dropEverywhere(t, await serveProbe(t));
  });
});

describe("a client that half-closes after a complete transaction", () => {
  test("gets its 250 and 221 (it is still reading), and the message is delivered once", async (t) => {
    // The hook takes a moment, as any store does (a write and an fsync): the FIN arrives meanwhile.
    const { port, messages } = await startRecordingServer(t, { onMessageData: () => sleep(20) });
    const client = await RawClient.greeted(port);
    assert.match(await client.command("EHLO half.test"), /^250 /m);
    client.write("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
    for (const code of ["250 ", "250 ", "354 "]) assert.ok((await client.reply()).startsWith(code));
    // Everything is sent; shutdown(SHUT_WR), as `nc -N` or a batch sender does, then read the replies.
    client.write("Subject: half-close\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    client.socket.end();
    const rest = await client.untilEnd();
    await sleep(100);
    assert.deepEqual(
      { replies: rest, delivered: messages.length },
      {
        replies:
          "250 2.0.0 Ok: message accepted\r\n221 2.0.0 mx.test Service closing transmission channel\r\n",
        delivered: 1,
      },
    );
  });
});

describe("a client dropping right after the 354 does not crash the server", () => {
  test("mailgate serve: 30 clients that read the 354 and hang up; the process lives and serves", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "mailgate-drop354-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const served = await startServe(join(dir, "mail"));
    t.after(() => {
      if (served.child.exitCode === null) served.child.kill("SIGKILL");
    });
    for (let n = 0; n < 30 && served.child.exitCode === null; n++) {
      const client = await RawClient.greeted(served.port).catch(() => null);
      if (client === null) break;
      assert.match(await client.command("EHLO drop.test"), /^250 /m);
      client.write("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
      await client.reply();
      await client.reply();
      assert.match(await client.reply(), /^354 /);
      client.close();
      await client.closed;
    }
    await sleep(100);
    assert.equal(served.child.exitCode, null, served.output().split("\n").slice(-16).join("\n"));
    await assertServes(served.port);
    served.child.kill("SIGTERM");
    assert.deepEqual(await served.exited, { code: 0, signal: null });
  });

  test("library: an onMessageStream hook that awaits before it reads survives a client gone after the 354", async () => {
    // In a child process: the uncaught exception would otherwise take the test runner down.
    const index = new URL("../../src/index.js", import.meta.url).href;
    const script = `
        import { connect } from "node:net";
        import { SmtpServer } from ${JSON.stringify(index)};
        const server = new SmtpServer({
          hosts: "127.0.0.1", ports: "0", loggerSeverity: "fatal",
          async onMessageStream(ctx, stream) {
            await new Promise((resolve) => setTimeout(resolve, 20)); // e.g. open a file, reach a queue
            for await (const chunk of stream) void chunk;
          },
        });
        await server.start();
        const socket = connect({ port: server.ports[0], host: "127.0.0.1" });
        let text = "";
        let step = 0;
        socket.on("data", (chunk) => {
          text += chunk;
          if (step === 0 && /^220 /m.test(text)) {
            step = 1;
            socket.write("HELO t\\r\\n");
          } else if (step === 1 && /^250 /m.test(text)) {
            step = 2;
            socket.write("MAIL FROM:<a@x.test>\\r\\nRCPT TO:<b@y.test>\\r\\nDATA\\r\\n");
          } else if (step === 2 && /^354 /m.test(text)) {
            step = 3;
            socket.destroy();
          }
        });
        await new Promise((resolve) => setTimeout(resolve, 300));
        await server.stop({ gracefully: false });
        console.log("survived");
      `;
    const result = await runNode(script);
    assert.deepEqual(
      { code: result.code, stdout: result.stdout.trim() },
      { code: 0, stdout: "survived" },
      result.stderr.split("\n").slice(0, 8).join("\n"),
    );
  });
});

function runNode(script: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: "pipe" });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

// ---- long lines ----------------------------------------------------------------------------------

describe("a 200 KB line inside DATA", () => {
  /** A 200 KB line of printable bytes (no CR or LF), starting with a dot so that stuffing applies too. */
  function longLine(): Buffer {
    const random = seededRandom(200);
    const line = Buffer.alloc(200 * 1024);
    for (let i = 0; i < line.length; i++) line[i] = 0x21 + Math.floor(random() * 94);
    line[0] = 0x2e;
    return line;
  }
  const message = Buffer.concat([
    Buffer.from("Subject: long-line\r\n\r\nbefore\r\n"),
    longLine(),
    Buffer.from("\r\nafter\r\n"),
  ]);

  test("is delivered byte-exact to onMessageData, sent in uneven pieces", async (t) => {
    const { port, messages } = await startRecordingServer(t);
    const client = await RawClient.greeted(port);
    assert.match(await client.command("EHLO long.test"), /^250 /m);
    const wire = dotStuff(message);
    client.write("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
    for (const code of ["250 ", "250 ", "354 "]) assert.ok((await client.reply()).startsWith(code));
    const random = seededRandom(7);
    for (let at = 0; at < wire.length; ) {
      const size = 1 + Math.floor(random() * 50_000);
      client.write(wire.subarray(at, at + size));
      at += size;
    }
    assert.equal(await client.reply(), "250 2.0.0 Ok: message accepted\r\n");
    assert.equal(messages.length, 1);
    assert.ok(messages[0]?.data.equals(message), "the stored bytes are the sent bytes");
  });

  test("is stored byte-exact in the Maildir", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "mailgate-longline-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const server = createStoringServer(
      { hosts: "127.0.0.1", ports: "0", hostname: "mx.test", loggerSeverity: "fatal" },
      await MaildirStore.open(dir),
    );
    await server.start();
    t.after(() => server.stop({ gracefully: false }));
    const client = await RawClient.greeted(server.ports[0] ?? 0);
    assert.match(await client.command("EHLO long.test"), /^250 /m);
    assert.match(await transaction(client, dotStuff(message)), /^250 2\.0\.0 Ok: stored as /);
    const [name, ...others] = await readdir(join(dir, "new"));
    assert.ok(name !== undefined && others.length === 0);
    const file = checkStoredFile(name, await readFile(join(dir, "new", name)));
    assert.equal(file.problem, "");
    assert.ok(file.clientBytes.equals(message), "the stored bytes are the sent bytes");
  });
});

describe("5 MB without a newline over real sockets", () => {
  /** Writes `bytes` of 'A' in 64 KiB chunks with backpressure; stops early when the connection closes. */
  async function pour(socket: Socket, bytes: number): Promise<number> {
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    let sent = 0;
    while (sent < bytes && !socket.destroyed && socket.writable) {
      const piece = chunk.subarray(0, Math.min(chunk.length, bytes - sent));
      const ok = socket.write(piece);
      sent += piece.length;
      if (!ok) {
        const closed = once(socket, "close").then(() => false);
        if (!(await Promise.race([once(socket, "drain").then(() => true), closed]))) break;
      }
    }
    return sent;
  }

  test("20 clients at once: nothing of the line is kept, each gets 421 4.7.0 and is closed, others served", async (t) => {
    const { server, port } = await startRecordingServer(t);
    const clients = await Promise.all(
      Array.from({ length: 20 }, async (_, n) => {
        const socket = connect({ port, host: "127.0.0.1" });
        const client = { socket, received: "", sent: 0 };
        socket.on("data", (chunk: Buffer) => {
          client.received += chunk.toString("latin1");
        });
        socket.on("error", () => {}); // writing into a closed connection: EPIPE or ECONNRESET
        await once(socket, "connect");
        while (!client.received.includes("\r\n")) await sleep(2);
        if (n % 2 === 1) {
          // Half of them say EHLO first: the flood then comes after a dialogue.
          socket.write("EHLO flood.test\r\n");
          while (!/^250 /m.test(client.received)) await sleep(2);
        }
        return client;
      }),
    );
    const retainedBefore = retainedMemory();
    const rssBefore = process.memoryUsage().rss;
    let rssMax = rssBefore;
    const sampler = setInterval(() => {
      rssMax = Math.max(rssMax, process.memoryUsage().rss);
    }, 5);
    t.after(() => clearInterval(sampler));

    // 900 KiB each, just under the 1 MiB ioBufferMaxSize: 18 MiB in all, open lines the server must not keep.
    await Promise.all(clients.map(async (client) => (client.sent += await pour(client.socket, 900 * 1024))));
    await waitFor(() => clients.every((c) => c.socket.writableLength === 0), "the clients' writes to flush");
    await sleep(100); // the server reads what the kernel holds
    const retainedOpen = retainedMemory() - retainedBefore;
    for (const client of clients) assert.equal(client.socket.destroyed, false, "still open below the limit");
    assert.equal(server.connections, 20);

    // The rest of the 5 MB: each connection is closed with 421 once the limit is passed.
    await Promise.all(
      clients.map(async (client) => {
        client.sent += await pour(client.socket, 5 * MiB - client.sent);
        if (!client.socket.destroyed) await once(client.socket, "close");
      }),
    );
    clearInterval(sampler);
    for (const { received } of clients) {
      assert.ok(received.endsWith(LINE_TOO_LONG), JSON.stringify(received.slice(-200)));
    }
    await waitFor(() => server.connections === 0, "the flooding connections to be gone");
    const retainedAfter = retainedMemory() - retainedBefore;
    const rssGrowth = rssMax - rssBefore;
    t.diagnostic(
      `retained with 20 x 900 KiB open lines: ${(retainedOpen / 1024).toFixed(0)} KiB; after: ` +
        `${(retainedAfter / 1024).toFixed(0)} KiB; RSS peak growth (clients and server) ${(rssGrowth / MiB).toFixed(1)} MiB`,
    );
    // Kept, the open lines would be 18 MiB.
    assert.ok(retainedOpen < 2 * MiB, `retained memory with the lines open grew by ${retainedOpen} bytes`);
    assert.ok(retainedAfter < MiB, `retained memory grew by ${retainedAfter} bytes`);
    // Buffered whole, 20 x 5 MB would be 100 MiB.
    assert.ok(rssGrowth < 64 * MiB, `RSS grew by ${(rssGrowth / MiB).toFixed(1)} MiB`);
    await assertServes(port);
  });
});
