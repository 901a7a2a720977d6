/**
 * Faults: nothing lost, nothing half-written (RFC 5321 6.1: a server that answered 250 is responsible
 * for the message). `mailgate serve` runs as a child process storing into a real Maildir.
 *
 * - SIGKILL while 8 clients send: the kill is aimed at a moment (a client in the middle of its DATA, a
 *   client waiting for its reply while the store writes and fsyncs, a file in tmp/ not yet renamed, a
 *   file renamed into new/ whose 250 no client has seen yet, a random moment). The moments are found by
 *   watching the clients and the Maildir, so where exactly the server is cannot be forced, but the
 *   outcome is checked over everything sent so far, after a restart on the same Maildir: every
 *   acknowledged message is in new/ exactly once with identical bytes, every file in new/ is complete (S=
 *   matches, the bytes are exactly those of a message whose final dot was sent) and nothing else is there.
 *   tmp/ may hold leftovers of the killed process: Maildir readers never look into tmp/ (the Maildir
 *   specification: a message is delivered only once it is in new/); the store removes those older than
 *   36 hours at start.
 * - SIGTERM while 10 clients send: exit status 0, and the stored messages are exactly those answered 250
 *   (the 250 is written before the 421, so no stored message can have lost its acknowledgement).
 * - stop() whose timeout expires while the store is committing a message: the client gets that
 *   message's outcome before the 421 (never a 421 for a message that lands in new/).
 * - A hook that never settles (onMessageData, or onMessageStream with or without reading): 421 4.4.2 at
 *   the deadline, other clients served meanwhile, nothing left open.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, type TestContext, test } from "node:test";
import { createStoringServer } from "../../src/cli/serve.js";
import type { SmtpServerOptions } from "../../src/server/server.js";
import { fsyncDirectory } from "../../src/store/group-commit.js";
import { MaildirStore } from "../../src/store/maildir.js";
import { RawClient, startRecordingServer, waitFor } from "../helpers/clients.js";
import {
  buildMessage,
  judge,
  type LedgerEntry,
  type LoadResult,
  listTmp,
  readMaildirNew,
  runLoad,
  type Served,
  seededRandom,
  sleep,
  startServe,
  TextPool,
} from "./harness.js";

async function scratch(t: TestContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function killOnEnd(t: TestContext, served: () => Served | undefined): void {
  t.after(() => {
    const child = served()?.child;
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
}

/** An endless supply of messages with ids `<prefix>-<n>` and body sizes drawn by `size`. */
function messageSource(
  prefix: string,
  pool: TextPool,
  random: () => number,
  size: () => number,
): () => { id: string; message: Buffer } | null {
  let n = 0;
  return () => {
    const id = `${prefix}-${++n}`;
    return { id, message: buildMessage(id, pool.lines(size(), random)) };
  };
}

/** A readable summary of what went wrong, for assertion messages. */
function explain(verdict: ReturnType<typeof judge>): string {
  const { lost, duplicates, corrupt, storedUnexpectedly } = verdict;
  return JSON.stringify({ lost, duplicates, corrupt, storedUnexpectedly }).slice(0, 2000);
}

type Trigger = "mid-DATA" | "awaiting-reply" | "tmp-file" | "renamed-unacked" | "random";

interface Round {
  trigger: Trigger;
  seed: number;
  /** Body sizes of this round's messages, in bytes. */
  size: (random: () => number) => number;
}

const ROUNDS: Round[] = [
  { trigger: "mid-DATA", seed: 11, size: (r) => 2_000 + Math.floor(r() * 300_000) },
  { trigger: "awaiting-reply", seed: 22, size: (r) => 500 + Math.floor(r() * 4_000) },
  { trigger: "tmp-file", seed: 33, size: (r) => 100_000 + Math.floor(r() * 400_000) },
  { trigger: "renamed-unacked", seed: 44, size: (r) => 500 + Math.floor(r() * 20_000) },
  { trigger: "random", seed: 55, size: (r) => (r() < 0.05 ? 2_000_000 : 1_000 + Math.floor(r() * 100_000)) },
];

describe("SIGKILL of mailgate serve under load", () => {
  test("after every kill and restart: acknowledged messages all stored once, byte-exact; nothing half-written", async (t) => {
    const dir = await scratch(t, "mailgate-kill-");
    const maildir = join(dir, "mail");
    const pool = new TextPool(3 * 1024 * 1024, seededRandom(1));
    const ledger = new Map<string, LedgerEntry>();
    let served: Served | undefined = await startServe(maildir);
    killOnEnd(t, () => served);
    const fired: string[] = [];
    let tmpLeftovers = 0;

    for (const [index, round] of ROUNDS.entries()) {
      const random = seededRandom(round.seed);
      const server = served as Served;
      const newBefore = (await readdir(join(maildir, "new"))).length;
      let acked = 0;
      const roundLedger = new Map<string, LedgerEntry>();
      const load: Promise<LoadResult> = runLoad({
        port: server.port,
        sessions: 8,
        random,
        keepBytes: true,
        nextMessage: messageSource(`r${index}`, pool, random, () => round.size(random)),
        perConnection: [1, 8],
        pipelining: 0.5,
        split: 0.6,
        stopWhenServerGone: true,
        onAck: () => acked++,
        ledger: roundLedger,
      });
      // The clients fill their ledger as they go: watch it (and the Maildir) for the aimed-at moment.
      await waitFor(() => acked >= 3, "the first messages to be acknowledged", 10_000);
      const deadline = Date.now() + 150 + Math.floor(random() * 250);
      while (Date.now() < deadline) await sleep(5);
      let hit = "";
      const giveUp = Date.now() + 3000;
      while (hit === "" && Date.now() < giveUp) {
        hit = await aim(round.trigger, { maildir, newBefore, ledger: roundLedger, random });
        if (hit === "") await sleep(1);
      }
      server.child.kill("SIGKILL");
      const exit = await server.exited;
      assert.equal(exit.signal, "SIGKILL");
      const result = await load;
      for (const [id, entry] of result.ledger) ledger.set(id, entry);
      const states = countStates(result.ledger);
      fired.push(`${round.trigger}: ${hit || "not seen within 3 s, killed anyway"}; clients: ${states}`);
      t.diagnostic(`round ${index + 1} killed at ${round.trigger}: ${hit || "(not seen)"}; ${states}`);

      // Restart on the same Maildir, then judge everything sent so far.
      const leftovers = await listTmp(maildir);
      tmpLeftovers += leftovers.length;
      served = await startServe(maildir);
      const files = await readMaildirNew(maildir);
      const verdict = judge(ledger, files);
      assert.deepEqual(verdict.lost, [], `acknowledged but not stored: ${explain(verdict)}`);
      assert.deepEqual(verdict.duplicates, [], `stored twice: ${explain(verdict)}`);
      assert.deepEqual(verdict.corrupt, [], `half-written or altered: ${explain(verdict)}`);
      assert.deepEqual(verdict.storedUnexpectedly, [], `stored without a final dot: ${explain(verdict)}`);
      assert.ok(verdict.states.acked > 0);
      assert.equal(
        files.length,
        verdict.states.acked + verdict.storedAckNotSeen,
        "new/ holds the acknowledged messages and some whose dot was sent, nothing else",
      );
      t.diagnostic(
        `after round ${index + 1}: ${verdict.states.acked} acknowledged, ${files.length} in new/ ` +
          `(${verdict.storedAckNotSeen} stored, ack not seen), ${leftovers.length} file(s) left in tmp/`,
      );
    }

    // The restarted server serves normally.
    const random = seededRandom(99);
    const last = await runLoad({
      port: (served as Served).port,
      sessions: 2,
      random,
      keepBytes: true,
      nextMessage: (() => {
        const next = messageSource("after", pool, random, () => 5_000);
        let left = 6;
        return () => (left-- > 0 ? next() : null);
      })(),
    });
    assert.equal(countStates(last.ledger), "6 acked");
    for (const [id, entry] of last.ledger) ledger.set(id, entry);
    const verdict = judge(ledger, await readMaildirNew(maildir));
    assert.deepEqual([verdict.lost, verdict.duplicates, verdict.corrupt], [[], [], []]);
    t.diagnostic(`kills aimed at: ${fired.join(" | ")}`);
    t.diagnostic(`tmp/ leftovers over all restarts: ${tmpLeftovers} (mailgate does not clean tmp/ at start)`);
    // Every aimed-at moment was seen at least in most rounds (a statistical check of the test itself).
    assert.ok(fired.filter((line) => !line.includes("not seen")).length >= 3, fired.join("\n"));
  });

  test("at start, tmp/ files older than 36 hours (a killed process's leftovers) are removed, fresh ones kept", async (t) => {
    const dir = await scratch(t, "mailgate-tmpclean-");
    const maildir = join(dir, "mail");
    for (const sub of ["tmp", "new", "cur"]) await mkdir(join(maildir, sub), { recursive: true });
    const old = join(maildir, "tmp", "1700000000.M1P1Q1R00.host");
    const fresh = join(maildir, "tmp", `${Math.floor(Date.now() / 1000)}.M1P2Q1R00.host`);
    await writeFile(old, "Return-Path: <a@x.test>\r\nX-Envelope-To: <b@y.test>\r\nSubject: half");
    await writeFile(fresh, "Return-Path: <a@x.test>\r\n");
    const longAgo = new Date(Date.now() - 40 * 3600 * 1000);
    await utimes(old, longAgo, longAgo);
    let served: Served | undefined = await startServe(maildir);
    killOnEnd(t, () => served);
    // The Maildir convention (qmail, Dovecot): a tmp/ file untouched for 36 hours is garbage; a fresh one
    // may belong to a delivery in progress by another process and must stay.
    await sleep(500);
    const left = await readdir(join(maildir, "tmp"));
    served.child.kill("SIGTERM");
    await served.exited;
    served = undefined;
    assert.deepEqual(left, [fresh.slice(fresh.lastIndexOf("/") + 1)]);
  });
});

interface Watch {
  maildir: string;
  /** Files in new/ when the round began. */
  newBefore: number;
  /** This round's ledger, filled live by the clients. */
  ledger: Map<string, LedgerEntry>;
  random: () => number;
}

/** Checks whether the moment `trigger` aims at is now; returns what it saw, or "" when not yet. */
async function aim(trigger: Trigger, watch: Watch): Promise<string> {
  const inState = (state: LedgerEntry["state"]) => {
    let count = 0;
    for (const entry of watch.ledger.values()) if (entry.state === state) count++;
    return count;
  };
  switch (trigger) {
    case "mid-DATA": {
      const partial = inState("partial");
      return partial > 0 ? `${partial} client(s) in the middle of their message content` : "";
    }
    case "awaiting-reply": {
      const waiting = inState("dot");
      return waiting > 0 ? `${waiting} client(s) past their final dot, waiting for the reply` : "";
    }
    case "tmp-file": {
      const names = await readdir(join(watch.maildir, "tmp"));
      return names.length > 0 ? `${names.length} file(s) in tmp/` : "";
    }
    case "renamed-unacked": {
      const renamed = (await readdir(join(watch.maildir, "new"))).length - watch.newBefore;
      const acked = inState("acked");
      return renamed > acked ? `${renamed} file(s) in new/ from this round, ${acked} acknowledged` : "";
    }
    case "random":
      return watch.random() < 0.05 ? "a random moment" : "";
  }
}

function countStates(ledger: Map<string, LedgerEntry>): string {
  const counts = new Map<string, number>();
  for (const entry of ledger.values()) counts.set(entry.state, (counts.get(entry.state) ?? 0) + 1);
  return [...counts].map(([state, count]) => `${count} ${state}`).join(", ");
}

describe("SIGTERM of mailgate serve under load", () => {
  test("10 clients sending: exit status 0, stored exactly the messages answered 250, each once", async (t) => {
    const dir = await scratch(t, "mailgate-term-");
    const maildir = join(dir, "mail");
    const pool = new TextPool(1024 * 1024, seededRandom(2));
    const random = seededRandom(77);
    const served = await startServe(maildir);
    killOnEnd(t, () => served);
    let acked = 0;
    const load = runLoad({
      port: served.port,
      sessions: 10,
      random,
      keepBytes: true,
      nextMessage: messageSource("term", pool, random, () => 200 + Math.floor(random() * 60_000)),
      perConnection: [1, 6],
      pipelining: 0.5,
      split: 0.5,
      stopWhenServerGone: true,
      onAck: () => acked++,
    });
    await waitFor(() => acked >= 40, "40 messages to be acknowledged", 10_000);
    served.child.kill("SIGTERM");
    const exit = await served.exited;
    const result = await load;
    assert.deepEqual(exit, { code: 0, signal: null }, served.output().slice(-2000));
    assert.match(served.output(), /SIGTERM received: stopping gracefully[\s\S]*mailgate stopped/);

    const files = await readMaildirNew(maildir);
    const verdict = judge(result.ledger, files);
    assert.deepEqual(verdict.lost, [], explain(verdict));
    assert.deepEqual(verdict.duplicates, [], explain(verdict));
    assert.deepEqual(verdict.corrupt, [], explain(verdict));
    assert.deepEqual(verdict.storedUnexpectedly, [], explain(verdict));
    // Equality: no client was left with a final dot and no reply, so nothing is "stored, ack not seen".
    assert.equal(verdict.states.dot, 0, "every client that sent its final dot got its reply before the 421");
    assert.equal(verdict.storedAckNotSeen, 0);
    assert.equal(files.length, verdict.states.acked);
    assert.equal(served.storedLines(), verdict.states.acked, "one 'Stored' line per acknowledged message");
    assert.deepEqual(await listTmp(maildir), [], "a graceful stop leaves nothing in tmp/");
    for (const end of result.sessionEnds) {
      // A connect fails two ways as the listener closes: refused, or reset while it was still being set up
      // in the listener's queue (seen once in about 8 full test runs). Either way the server never took it.
      assert.match(
        end,
        /^421 4\.3\.2 |^connect: ECONN(REFUSED|RESET)$|^\(closed\)$/,
        `a session ended with ${end}`,
      );
    }
    t.diagnostic(
      `${verdict.states.acked} acknowledged and stored; sessions ended with: ` +
        JSON.stringify(Object.fromEntries(result.unexpectedReplies)),
    );
  });
});

describe("stop() whose timeout expires while a message is being stored", () => {
  test("the client is told the outcome of a message already in new/, never 421 for it", async (t) => {
    const dir = await scratch(t, "mailgate-stoptimeout-");
    let slow = false;
    const store = await MaildirStore.open(dir, {
      // The new/ fsync takes 800 ms (a busy disk): the message is in new/, its 250 not yet sent.
      async fsyncDirectory(directory) {
        if (slow) await sleep(800);
        await fsyncDirectory(directory);
      },
    });
    const server = createStoringServer(
      { hosts: "127.0.0.1", ports: "0", hostname: "mx.test", loggerSeverity: "fatal" },
      store,
    );
    await server.start();
    t.after(() => server.stop({ gracefully: false }));
    const client = await RawClient.greeted(server.ports[0] ?? 0);
    assert.match(await client.command("EHLO client.test"), /^250 /m);
    client.write("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
    for (const code of ["250 ", "250 ", "354 "]) assert.ok((await client.reply()).startsWith(code));
    slow = true;
    client.write("Subject: at-the-deadline\r\n\r\nbody\r\n.\r\n");
    await waitFor(() => readdirSync(join(dir, "new")).length === 1, "the message to be renamed into new/");
    const stopping = server.stop({ timeout: 100 });
    const reply = await client.reply(3000);
    await stopping;
    await sleep(1000); // the slow fsync ends; the delivery completes or is taken back
    const stored = readdirSync(join(dir, "new")).length;
    assert.ok(
      reply.startsWith("250 ") || stored === 0,
      `the client got ${JSON.stringify(reply)} while ${stored} message(s) are in new/`,
    );
  });
});

describe("a hook that never settles", () => {
  const HANG = "Subject: hang\r\n";
  type Variant = {
    name: string;
    hooks: Pick<SmtpServerOptions, "onMessageData" | "onMessageStream">;
  };
  const variants: Variant[] = [
    {
      name: "onMessageData",
      hooks: {
        onMessageData: (ctx) =>
          ctx.message.data.toString("latin1").startsWith(HANG) ? new Promise(() => {}) : undefined,
      },
    },
    {
      name: "onMessageStream reading everything",
      hooks: {
        async onMessageStream(_ctx, stream) {
          let head = "";
          for await (const chunk of stream)
            if (head.length < 64) head += (chunk as Buffer).toString("latin1");
          if (head.startsWith(HANG)) await new Promise(() => {});
        },
      },
    },
    {
      name: "onMessageStream that stops reading",
      hooks: {
        async onMessageStream(_ctx, stream) {
          const first = (await stream[Symbol.asyncIterator]().next()).value as Buffer | undefined;
          if (first?.toString("latin1").startsWith(HANG)) await new Promise(() => {});
          stream.resume();
        },
      },
    },
  ];
  for (const variant of variants) {
    test(`${variant.name}: the client gets 421 4.4.2 at ioCmdTimeout, others are served meanwhile`, async (t) => {
      const { server, port } = await startRecordingServer(t, { ioCmdTimeout: 500, ...variant.hooks });
      const hung = await RawClient.greeted(port);
      assert.match(await hung.command("EHLO hung.test"), /^250 /m);
      hung.write("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
      assert.match(await hung.reply(), /^250 /);
      assert.match(await hung.reply(), /^250 /);
      assert.match(await hung.reply(), /^354 /);
      // Big enough to fill the stream's buffer when its consumer stops reading.
      hung.write(`${HANG}\r\n${"y".repeat(100)}\r\n`.repeat(2000));
      hung.write(".\r\n");
      const started = Date.now();
      const hungReply = hung.reply(5000);

      // Meanwhile, three other clients each send three messages, all acknowledged quickly.
      await Promise.all(
        [1, 2, 3].map(async (n) => {
          const client = await RawClient.greeted(port);
          assert.match(await client.command("EHLO other.test"), /^250 /m);
          for (let i = 0; i < 3; i++) {
            client.write("MAIL FROM:<o@x.test>\r\nRCPT TO:<p@y.test>\r\nDATA\r\n");
            for (const code of ["250", "250", "354"]) assert.ok((await client.reply()).startsWith(code));
            client.write(`Subject: other ${n}.${i}\r\n\r\nfine\r\n.\r\n`);
            assert.equal(await client.reply(), "250 2.0.0 Ok: message accepted\r\n");
          }
          // Done before the hung client's deadline, which would otherwise be theirs too (ioCmdTimeout).
          assert.match(await client.command("QUIT"), /^221 /);
          await client.untilEnd();
        }),
      );
      const allServedAt = Date.now() - started;
      assert.equal(await hungReply, "421 4.4.2 mx.test Error: timeout exceeded\r\n");
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 400 && elapsed < 3000, `421 after ${elapsed} ms`);
      assert.ok(
        allServedAt < elapsed,
        `the others were served (${allServedAt} ms) before the 421 (${elapsed} ms)`,
      );
      assert.equal(await hung.untilEnd(), "");
      await waitFor(
        () => server.connections === 0 && server.processings === 0,
        "connections and processings to return to 0",
      );
      const fresh = await RawClient.greeted(port);
      assert.match(await fresh.command("EHLO fresh.test"), /^250 /m);
      fresh.close();
    });
  }
});
