/** Postfix's XCLIENT and XFORWARD, for trusted front ends only. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { openSession } from "../helpers/session-harness.js";

const trusted = { transport: { xclientTrusted: true } };

test("XCLIENT from a trusted peer names the real client and starts the session over with a 220", async () => {
  const t = await openSession(trusted);
  assert.match(
    await t.send("EHLO filter.test\r\n"),
    /250-XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT\r\n250-XFORWARD /,
  );
  assert.equal(
    await t.send(
      "XCLIENT NAME=client.example ADDR=IPV6:2001:db8::7 PORT=4321 HELO=client.example LOGIN=[UNAVAILABLE]\r\n",
    ),
    "220 mx.test ESMTP ready\r\n",
  );
  const { server } = t.ctx;
  assert.equal(server.remoteIp, "2001:db8::7");
  assert.equal(server.remoteHost, "client.example");
  assert.equal(server.remotePort, 4321);
  assert.equal(server.helo, "client.example");
  assert.equal(server.authenticated, null);
  assert.equal(
    await t.send("MAIL FROM:<a@x.test>\r\n"),
    "503 5.5.1 Error: send HELO/EHLO first\r\n",
    "the session starts over",
  );
});

test("XCLIENT values are xtext and checked; a bad one changes nothing", async () => {
  const t = await openSession(trusted);
  await t.send("EHLO f\r\n");
  assert.equal(await t.send("XCLIENT ADDR=not-an-ip NAME=x\r\n"), "501 5.5.4 Error: bad ADDR address\r\n");
  assert.equal(t.ctx.server.remoteIp, "127.0.0.1");
  assert.equal(await t.send("XCLIENT NAME=a+0D+0Ab\r\n"), "501 5.5.4 Error: invalid NAME value\r\n");
  assert.equal(
    await t.send("XCLIENT COLOR=blue\r\n"),
    "501 5.5.4 Error: bad XCLIENT attribute name: COLOR\r\n",
  );
  await t.send("MAIL FROM:<a@x.test>\r\n");
  assert.equal(
    await t.send("XCLIENT NAME=x\r\n"),
    "503 5.5.1 Error: XCLIENT is not allowed in a transaction\r\n",
  );
});

test("XFORWARD is recorded in the next transaction's envelope, then forgotten", async () => {
  const t = await openSession(trusted);
  await t.send("EHLO f\r\n");
  assert.equal(await t.send("XFORWARD NAME=orig.example ADDR=192.0.2.9 PROTO=ESMTP\r\n"), "250 2.0.0 Ok\r\n");
  assert.equal(await t.send("XFORWARD HELO=orig.example IDENT=abc123\r\n"), "250 2.0.0 Ok\r\n");
  await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n");
  assert.deepEqual(t.ctx.envelope.forwarded, {
    name: "orig.example",
    addr: "192.0.2.9",
    proto: "ESMTP",
    helo: "orig.example",
    ident: "abc123",
  });
  await t.send("DATA\r\n");
  await t.send("hi\r\n.\r\n");
  await t.send("MAIL FROM:<a@x.test>\r\n");
  assert.deepEqual(t.ctx.envelope.forwarded, {});
});

test("an untrusted client gets 550 and no XCLIENT in EHLO", async () => {
  const t = await openSession();
  assert.doesNotMatch(await t.send("EHLO c\r\n"), /XCLIENT|XFORWARD/);
  assert.equal(await t.send("XCLIENT ADDR=192.0.2.1\r\n"), "550 5.7.0 Error: insufficient authorization\r\n");
  assert.equal(
    await t.send("XFORWARD ADDR=192.0.2.1\r\n"),
    "550 5.7.0 Error: insufficient authorization\r\n",
  );
  assert.equal(t.ctx.server.remoteIp, "127.0.0.1");
});
