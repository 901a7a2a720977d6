/**
 * AUTH failures counted per client address across connections (maxAuthFailuresPerIp, as Postfix's anvil
 * counts per client): real clients over loopback, where 127.0.0.2 is a second client address.
 */
import assert from "node:assert/strict";
import { describe, type TestContext, test } from "node:test";
import type { AuthFailureLimit } from "../../src/protocol/auth-exchange.js";
import type { SessionContext } from "../../src/protocol/context.js";
import { SmtpError } from "../../src/protocol/errors.js";
import type { SmtpServerOptions } from "../../src/server/server.js";
import { RawClient, startRecordingServer, waitFor } from "../helpers/clients.js";
import { openSession } from "../helpers/session-harness.js";

const plain = (user: string, password: string) => Buffer.from(`\0${user}\0${password}`).toString("base64");
const RIGHT = `AUTH PLAIN ${plain("alice", "right")}`;
const WRONG = `AUTH PLAIN ${plain("alice", "wrong")}`;
const BLOCKED = /^421 4\.7\.0 mx\.test Error: too many authentication failures from your address/;

async function startServer(t: TestContext, options: SmtpServerOptions = {}) {
  return startRecordingServer(t, {
    authMode: "optional",
    authOverPlaintext: true,
    onAuth(_ctx: SessionContext, _authz: string, user: string, secret: string) {
      if (user === "alice" && secret === "right") return user;
      throw SmtpError.code(535);
    },
    ...options,
  });
}

async function ehlo(port: number, from?: string): Promise<RawClient> {
  const client = await RawClient.greeted(port, "127.0.0.1", from);
  assert.match(await client.command("EHLO client.test"), /^250 /m);
  return client;
}

describe("maxAuthFailuresPerIp", () => {
  test("10 failures from one address across connections (the default): its next AUTH gets 421 4.7.0 on a new connection, another address still authenticates the same account", async (t) => {
    const s = await startServer(t);
    // Failures of every kind count: wrong credentials (535), a cancelled exchange, a malformed response.
    const first = await ehlo(s.port);
    for (let i = 0; i < 4; i++) assert.match(await first.command(WRONG), /^535 5\.7\.8 /);
    assert.match(await first.command("QUIT"), /^221 /);
    const second = await ehlo(s.port);
    assert.match(await second.command("AUTH LOGIN"), /^334 /);
    assert.match(await second.command("*"), /^501 5\.0\.0 Authentication cancelled/);
    assert.match(await second.command("AUTH PLAIN !!!"), /^501 5\.5\.2 /);
    assert.match(await second.command(WRONG), /^535 /);
    assert.match(await second.command(WRONG), /^535 /);
    assert.match(await second.command("QUIT"), /^221 /);
    const third = await ehlo(s.port);
    assert.match(await third.command(WRONG), /^535 /);
    // The tenth: answered, then the address is refused AUTH and this connection ends.
    assert.match(await third.command(WRONG), /^535 /);
    assert.match(await third.reply(), BLOCKED);
    await third.untilEnd();

    // A new connection from that address: even the right password is refused, and the connection ends.
    const fourth = await ehlo(s.port);
    assert.match(await fourth.command(RIGHT), BLOCKED);
    await fourth.untilEnd();

    // Counted by address, never by account: alice from another address is not locked out.
    const other = await ehlo(s.port, "127.0.0.2");
    assert.match(await other.command(RIGHT), /^235 2\.7\.0 /);
    other.close();

    // The blocked address may still send mail without AUTH (authMode optional): only AUTH is refused.
    const mail = await ehlo(s.port);
    assert.match(await mail.command("MAIL FROM:<a@x.test>"), /^250 /);
    assert.match(await mail.command("RCPT TO:<b@y.test>"), /^250 /);
    assert.match(await mail.command("DATA"), /^354 /);
    assert.match(await mail.command("Subject: hi\r\n\r\nhi\r\n."), /^250 /);
    mail.close();
  });

  test("an onAuth failing internally (454) does not count against the client; 0 turns the limit off", async (t) => {
    let broken = true;
    const s = await startServer(t, {
      maxAuthFailuresPerIp: 2,
      onAuth(_ctx: SessionContext, _authz: string, user: string, secret: string) {
        if (broken) throw new Error("the account database is down");
        if (user === "alice" && secret === "right") return user;
        throw SmtpError.code(535);
      },
    });
    for (let i = 0; i < 3; i++) {
      const client = await ehlo(s.port);
      assert.match(await client.command(RIGHT), /^454 4\.7\.0 Temporary authentication failure/);
      client.close();
    }
    broken = false;
    const client = await ehlo(s.port);
    assert.match(await client.command(RIGHT), /^235 /);
    client.close();

    const off = await startServer(t, { maxAuthFailuresPerIp: 0, maxAuthFailures: 100 });
    const many = await ehlo(off.port);
    for (let i = 0; i < 30; i++) assert.match(await many.command(WRONG), /^535 /);
    assert.match(await many.command(RIGHT), /^235 /);
    many.close();
  });

  test("AUTHs racing from one address are checked one at a time: no guess beyond the limit is checked", async (t) => {
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let checking = 0;
    let checked = 0;
    const s = await startServer(t, {
      maxAuthFailuresPerIp: 3,
      async onAuth() {
        checking++;
        await released;
        checked++;
        throw SmtpError.code(535);
      },
    });
    const clients = await Promise.all([1, 2, 3, 4, 5, 6].map(() => ehlo(s.port)));
    const answers = clients.map((client) => client.command(WRONG));
    await waitFor(() => checking === 1, "the first AUTH check under way");
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(checking, 1, "the others wait for their turn");
    release();
    const replies = await Promise.all(answers);
    // Three guesses were checked (the third reached the limit: 535, then 421); the fourth found the
    // address blocked when its turn came (421, unchecked); the last two found 4 checks queued (454).
    assert.equal(checked, 3);
    assert.deepEqual(replies.map((reply) => reply.slice(0, 3)).sort(), [
      "421",
      "454",
      "454",
      "535",
      "535",
      "535",
    ]);
    for (const client of clients) client.close();
  });

  test("one address queues at most 4 checks (454 beyond, not counted), and a client gone while waiting is never checked", async (t) => {
    let calls = 0;
    const s = await startServer(t, {
      async onAuth(_ctx: SessionContext, _authz: string, user: string, secret: string) {
        calls++;
        await new Promise((resolve) => setTimeout(resolve, 100));
        if (user === "alice" && secret === "right") return user;
        throw SmtpError.code(535);
      },
    });
    const clients = await Promise.all(Array.from({ length: 8 }, () => ehlo(s.port)));
    const replies = await Promise.all(clients.map((client) => client.command(RIGHT)));
    assert.deepEqual(replies.map((reply) => reply.slice(0, 3)).sort(), [
      "235",
      "235",
      "235",
      "235",
      "454",
      "454",
      "454",
      "454",
    ]);
    assert.equal(calls, 4);
    for (const client of clients) client.close();

    // Four clients that send their AUTH and reset at once: at most the first is checked.
    calls = 0;
    const gone = await Promise.all(Array.from({ length: 4 }, () => ehlo(s.port)));
    for (const client of gone) client.write(`${RIGHT}\r\n`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    for (const client of gone) client.drop(true);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.ok(calls <= 1, `${calls} checks for clients that had gone`);
    const after = await ehlo(s.port);
    assert.match(await after.command(RIGHT), /^235 /, "none of it counted against the address");
    after.close();
  });

  test("a guess counts though the client resets right after sending it", async (t) => {
    let checked = 0;
    const s = await startServer(t, {
      maxAuthFailuresPerIp: 3,
      async onAuth() {
        checked++;
        await new Promise((resolve) => setTimeout(resolve, 50));
        throw SmtpError.code(535);
      },
    });
    for (let i = 0; i < 3; i++) {
      const client = await ehlo(s.port);
      client.write(`${WRONG}\r\n`);
      await waitFor(() => checked === i + 1, "the guess being checked");
      client.drop(true);
    }
    await new Promise((resolve) => setTimeout(resolve, 150)); // the last check ends
    const next = await ehlo(s.port);
    assert.match(await next.command(RIGHT), BLOCKED);
    assert.equal(checked, 3);
  });
});

describe("the session with an address limit that answers later (as a shared store would)", () => {
  function asyncLimit(blocked: boolean, recorded: string[]): AuthFailureLimit {
    return {
      isBlocked: async () => blocked,
      record: async (ctx) => {
        recorded.push(ctx.server.remoteIp);
        return recorded.length >= 2;
      },
      exclusive: (_ctx, check) => check(),
    };
  }
  const config = (addressLimit: AuthFailureLimit) => ({
    auth: {
      mode: "optional" as const,
      mechanisms: ["PLAIN" as const],
      overPlaintext: true,
      maxFailures: 5,
      addressLimit,
    },
  });
  const hooks = {
    onAuth(_ctx: SessionContext, _authz: string, user: string, secret: string) {
      if (user === "alice" && secret === "right") return user;
      throw SmtpError.code(535);
    },
  };

  test("a blocked client gets 421 4.7.0 and the connection closes; the hook is not called", async () => {
    let called = false;
    const h = await openSession({
      config: config(asyncLimit(true, [])),
      hooks: {
        onAuth() {
          called = true;
        },
      },
    });
    await h.send("EHLO c\r\n");
    assert.match(await h.send(`${RIGHT}\r\n`), BLOCKED);
    assert.equal(h.closed, true);
    assert.equal(called, false);
  });

  test("failures are recorded for the session's client; reaching the limit gets 421 after the 535", async () => {
    const recorded: string[] = [];
    const h = await openSession({ config: config(asyncLimit(false, recorded)), hooks });
    await h.send("EHLO c\r\n");
    assert.equal(await h.send(`${WRONG}\r\n`), "535 5.7.8 Authentication credentials invalid\r\n");
    assert.match(
      await h.send(`${WRONG}\r\n`),
      /^535 5\.7\.8 Authentication credentials invalid\r\n421 4\.7\.0 mx\.test Error: too many authentication failures from your address/,
    );
    assert.equal(h.closed, true);
    assert.deepEqual(recorded, ["127.0.0.1", "127.0.0.1"]);
  });

  test("a limit that fails (its store unreachable): AUTH gets 454 4.7.0; a failure it cannot record is still answered", async () => {
    const unreachable = async () => {
      throw new Error("connection refused");
    };
    const h = await openSession({
      config: config({ isBlocked: unreachable, record: () => false, exclusive: (_ctx, check) => check() }),
      hooks,
    });
    await h.send("EHLO c\r\n");
    assert.match(await h.send(`${RIGHT}\r\n`), /^454 4\.7\.0 /);
    assert.equal(h.ctx.server.authenticated, null);
    assert.ok(
      h.logs.some((line) =>
        /^error: The AUTH failure limit cannot be checked: .*connection refused/.test(line),
      ),
      h.logs.join("\n"),
    );
    const g = await openSession({
      config: config({ isBlocked: () => false, record: unreachable, exclusive: (_ctx, check) => check() }),
      hooks,
    });
    await g.send("EHLO c\r\n");
    assert.equal(await g.send(`${WRONG}\r\n`), "535 5.7.8 Authentication credentials invalid\r\n");
    assert.equal(g.closed, false);
    assert.match(await g.send(`${RIGHT}\r\n`), /^235 /);
  });
});
