/**
 * A session's life without sockets: STARTTLS and what it resets, the dialogue log, graceful and forced
 * shutdown, timeouts, and input held back while a hook runs (flow control).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SmtpError } from "../../src/protocol/errors.js";
import { openSession, TEST_CONFIG } from "../helpers/session-harness.js";

const SHUTDOWN = "421 4.3.2 mx.test Service shutting down, closing transmission channel\r\n";

describe("STARTTLS", () => {
  async function tlsSession(startTls: () => Promise<void> = async () => {}) {
    return openSession({
      config: { tls: true, auth: { ...TEST_CONFIG.auth, mode: "optional", overPlaintext: true } },
      transport: { startTls },
      hooks: { onAuth: () => undefined },
    });
  }

  test("after EHLO: 220, then the session starts over: HELO, AUTH and the envelope are forgotten", async () => {
    const t = await tlsSession(async () => {
      t.ctx.server.encrypted = new Date();
    });
    await t.send("EHLO client.example\r\n");
    await t.send(`AUTH PLAIN ${Buffer.from("\0alice\0pw").toString("base64")}\r\n`);
    assert.equal(t.ctx.server.authenticationId, "alice");
    assert.equal(await t.send("STARTTLS\r\n"), "220 2.0.0 Ready to start TLS\r\n");
    const { server } = t.ctx;
    assert.deepEqual(
      [
        server.helo,
        server.heloCommand,
        server.authorizationId,
        server.authenticationId,
        server.authMechanism,
      ],
      ["", "", "", "", ""],
    );
    assert.equal(server.authenticated, null);
    assert.equal(await t.send("MAIL FROM:<a@b.example>\r\n"), "503 5.5.1 Error: send HELO/EHLO first\r\n");
    assert.match(await t.send("EHLO client.example\r\n"), /^250-/);
    assert.equal(await t.send("STARTTLS\r\n"), "503 5.5.1 Error: TLS is already active\r\n");
  });

  test("before EHLO: 503; not offered: 502; with arguments: 501", async () => {
    const t = await tlsSession();
    assert.equal(await t.send("STARTTLS\r\n"), "503 5.5.1 Error: send EHLO first\r\n");
    await t.send("EHLO client.example\r\n");
    assert.equal(await t.send("STARTTLS now\r\n"), "501 5.5.4 Syntax: STARTTLS takes no arguments\r\n");
    const plain = await openSession({ config: { tls: true } }); // no transport.startTls
    await plain.send("EHLO client.example\r\n");
    assert.equal(await plain.send("STARTTLS\r\n"), "502 5.5.1 Command not implemented\r\n");
    const off = await openSession({ transport: { startTls: async () => {} } });
    await off.send("EHLO client.example\r\n");
    assert.equal(await off.send("STARTTLS\r\n"), "502 5.5.1 Command not implemented\r\n");
  });

  test("a failed handshake is logged and ends the session without another reply", async () => {
    const t = await tlsSession(async () => {
      throw new Error("no shared cipher");
    });
    await t.send("EHLO client.example\r\n");
    assert.equal(await t.send("STARTTLS\r\n"), "220 2.0.0 Ready to start TLS\r\n");
    assert.equal(t.closed, true);
    assert.ok(t.logs.includes("info: STARTTLS failed: Error: no shared cipher"), t.logs.join("\n"));
  });
});

describe("the dialogue log (logDialog)", () => {
  test("every command and reply at debug; AUTH's initial response masked", async () => {
    const t = await openSession({
      config: { logDialog: true, auth: { ...TEST_CONFIG.auth, mode: "optional", overPlaintext: true } },
      hooks: { onAuth: () => undefined },
    });
    await t.send("EHLO client.example\r\n");
    await t.send(`AUTH PLAIN ${Buffer.from("\0alice\0s3cret").toString("base64")}\r\n`);
    await t.send("NOOP\r\n");
    const debug = t.logs.filter((line) => line.startsWith("debug: "));
    assert.ok(debug.includes("debug: <<< EHLO client.example"), debug.join("\n"));
    assert.ok(debug.includes("debug: >>> 250-mx.test at your service"), debug.join("\n"));
    assert.ok(debug.includes("debug: <<< AUTH PLAIN ***"), debug.join("\n"));
    assert.ok(debug.includes("debug: >>> 235 2.7.0 Authentication successful"), debug.join("\n"));
    assert.ok(debug.includes("debug: <<< NOOP"));
    assert.ok(!t.logs.join("\n").includes(Buffer.from("\0alice\0s3cret").toString("base64")));
  });

  test("off: nothing of the dialogue is logged", async () => {
    const t = await openSession();
    await t.send("EHLO client.example\r\nNOOP\r\n");
    assert.deepEqual(
      t.logs.filter((line) => line.startsWith("debug: ")),
      [],
    );
  });
});

describe("shutdown", () => {
  test("requestClose: an idle session gets 421 at once", async () => {
    const t = await openSession();
    await t.send("EHLO client.example\r\n");
    const before = t.written.length;
    t.session.requestClose();
    assert.equal(t.written.slice(before).join(""), SHUTDOWN);
    assert.equal(t.closed, true);
  });

  test("requestClose in a transaction: the transaction ends first (RSET), then 421", async () => {
    const t = await openSession();
    await t.send("EHLO client.example\r\n");
    await t.send("MAIL FROM:<a@b.example>\r\n");
    t.session.requestClose();
    assert.equal(t.closed, false);
    assert.equal(await t.send("RCPT TO:<c@d.example>\r\n"), "250 2.1.5 Ok\r\n");
    assert.equal(await t.send("RSET\r\n"), `250 2.0.0 Ok\r\n${SHUTDOWN}`);
    assert.equal(t.closed, true);
  });

  test("requestClose during a message: its 250 first, then 421", async () => {
    const t = await openSession();
    await t.send("EHLO client.example\r\n");
    await t.send("MAIL FROM:<a@b.example>\r\n");
    await t.send("RCPT TO:<c@d.example>\r\n");
    await t.send("DATA\r\n");
    t.session.requestClose();
    assert.equal(
      await t.send("Subject: x\r\n\r\nbody\r\n.\r\n"),
      `250 2.0.0 Ok: message accepted\r\n${SHUTDOWN}`,
    );
    assert.equal(t.messages.length, 1);
  });

  test("shutdownNow: 421 at once, the message under way abandoned", async () => {
    const t = await openSession();
    await t.send("EHLO client.example\r\n");
    await t.send("MAIL FROM:<a@b.example>\r\n");
    const before = t.written.length;
    t.session.shutdownNow();
    assert.equal(t.written.slice(before).join(""), SHUTDOWN);
    assert.equal(t.closed, true);
    const after = t.written.length;
    t.session.shutdownNow();
    t.session.timeout();
    assert.equal(t.written.length, after, "a closed session says nothing more");
  });

  test("timeout: 421 4.4.2 and a close", async () => {
    const t = await openSession();
    await t.send("EHLO client.example\r\n");
    const before = t.written.length;
    t.session.timeout();
    assert.equal(t.written.slice(before).join(""), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
    assert.equal(t.closed, true);
  });
});

describe("flow control", () => {
  test("input beyond 256 KiB held while a hook runs makes receive() say no more, until it is consumed", async () => {
    let release = () => {};
    const t = await openSession({
      hooks: {
        onMailFrom: () =>
          new Promise<undefined>((resolve) => {
            release = () => resolve(undefined);
          }),
      },
    });
    await t.send("EHLO client.example\r\n");
    const chunk = Buffer.from("RSET\r\n".repeat(10_000)); // 60,000 bytes of pipelined commands
    assert.equal(t.session.receive(Buffer.from("MAIL FROM:<a@b.example>\r\n")), true);
    const answers: boolean[] = [];
    for (let i = 0; i < 5; i++) answers.push(t.session.receive(chunk));
    assert.deepEqual(answers, [true, true, true, true, false], "over 256 KiB buffered: no more");
    assert.ok(t.session.bufferedInputBytes > 256 * 1024);
    t.paused = true; // as the transport does when receive() says no more
    release();
    await t.session.whenIdle();
    assert.equal(t.paused, false, "inputConsumed() was called once the input was handled");
    assert.equal(t.session.bufferedInputBytes, 0);
    assert.equal(t.written.join("").split("250 2.0.0 Ok\r\n").length - 1, 50_000, "every RSET answered");
  });
});

test("a hook's SmtpError 421 during a command closes the session after its reply", async () => {
  const t = await openSession({
    hooks: {
      onMailFrom: () => {
        throw new SmtpError(421, "Go away now", "4.7.0");
      },
    },
  });
  await t.send("EHLO client.example\r\n");
  assert.equal(await t.send("MAIL FROM:<a@b.example>\r\n"), "421 4.7.0 Go away now\r\n");
  assert.equal(t.closed, true);
});
