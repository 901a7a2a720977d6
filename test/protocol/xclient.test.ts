/** Postfix's XCLIENT and XFORWARD, for trusted front ends only. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseEsmtpParams } from "../../src/protocol/commands.js";
import { applyXclient, parseXforward } from "../../src/protocol/xclient.js";
import { refusal } from "../helpers/refusal.js";
import { newContext, openSession } from "../helpers/session-harness.js";

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

/** A fresh session's ServerInfo: 127.0.0.1:40000 to 127.0.0.1:25, no HELO, not authenticated. */
const serverInfo = () => newContext().server;
const parameters = (text: string) => parseEsmtpParams(text);

describe("applyXclient", () => {
  test("every attribute replaces what the session knew; the others stay", () => {
    const server = serverInfo();
    applyXclient(
      parameters(
        "NAME=mail.example ADDR=192.0.2.7 PORT=4711 DESTADDR=198.51.100.1 DESTPORT=587 HELO=client.example PROTO=esmtp LOGIN=alice",
      ),
      server,
    );
    assert.equal(server.remoteHost, "mail.example");
    assert.equal(server.remoteIp, "192.0.2.7");
    assert.equal(server.remotePort, 4711);
    assert.equal(server.localIp, "198.51.100.1");
    assert.equal(server.localPort, 587);
    assert.equal(server.helo, "client.example");
    assert.equal(server.heloCommand, "EHLO");
    assert.equal(server.authenticationId, "alice");
    assert.equal(server.authorizationId, "alice");
    assert.equal(server.authMechanism, "XCLIENT");
    assert.ok(server.authenticated instanceof Date);
    const only = serverInfo();
    applyXclient(parameters("PORT=1"), only);
    assert.deepEqual(
      [
        only.remoteIp,
        only.remoteHost,
        only.remotePort,
        only.localIp,
        only.localPort,
        only.helo,
        only.heloCommand,
      ],
      ["127.0.0.1", serverInfo().remoteHost, 1, "127.0.0.1", 25, "", serverInfo().heloCommand],
    );
    assert.equal(only.authenticated, null);
  });

  test("ADDR without NAME names the host by the address; NAME=[UNAVAILABLE] too", () => {
    const server = serverInfo();
    applyXclient(parameters("ADDR=IPV6:2001:db8::5"), server);
    assert.equal(server.remoteIp, "2001:db8::5");
    assert.equal(server.remoteHost, "2001:db8::5");
    const unnamed = serverInfo();
    applyXclient(parameters("ADDR=192.0.2.9 NAME=[UNAVAILABLE]"), unnamed);
    assert.equal(unnamed.remoteHost, "192.0.2.9");
    const temp = serverInfo();
    applyXclient(parameters("NAME=[tempunavail]"), temp);
    assert.equal(temp.remoteHost, "127.0.0.1", "any case");
  });

  test("PROTO=SMTP is HELO, ESMTP is EHLO (any case), [UNAVAILABLE] is none; anything else is refused", () => {
    for (const [proto, command] of [
      ["SMTP", "HELO"],
      ["smtp", "HELO"],
      ["ESMTP", "EHLO"],
      ["[UNAVAILABLE]", ""],
    ]) {
      const server = serverInfo();
      applyXclient(parameters(`PROTO=${proto}`), server);
      assert.equal(server.heloCommand, command, proto);
    }
    assert.equal(
      refusal(() => applyXclient(parameters("PROTO=LMTP"), serverInfo())),
      "501 5.5.4 Error: PROTO must be SMTP or ESMTP",
    );
  });

  test("LOGIN=[UNAVAILABLE] logs the client out", () => {
    const server = serverInfo();
    applyXclient(parameters("LOGIN=alice"), server);
    applyXclient(parameters("LOGIN=[UNAVAILABLE]"), server);
    assert.equal(server.authenticated, null);
    assert.equal(server.authenticationId, "");
    assert.equal(server.authMechanism, "");
  });

  test("ports: 0 to 65535 in digits; [UNAVAILABLE] is 0; addresses must be IP addresses", () => {
    const server = serverInfo();
    applyXclient(parameters("PORT=65535 DESTPORT=[UNAVAILABLE]"), server);
    assert.deepEqual([server.remotePort, server.localPort], [65535, 0]);
    for (const bad of ["PORT=65536", "PORT=-1", "PORT=1a", "PORT=a1", "PORT=123456", "DESTPORT=99999"]) {
      const keyword = bad.split("=")[0];
      assert.equal(
        refusal(() => applyXclient(parameters(bad), serverInfo())),
        `501 5.5.4 Error: bad ${keyword}`,
        bad,
      );
    }
    for (const bad of [
      "ADDR=mail.example",
      "ADDR=192.0.2.300",
      "DESTADDR=IPV6:zz::1",
      "ADDR=IPV6:192.0.2.1x",
    ]) {
      const keyword = bad.split("=")[0];
      assert.equal(
        refusal(() => applyXclient(parameters(bad), serverInfo())),
        `501 5.5.4 Error: bad ${keyword} address`,
        bad,
      );
    }
    const unknown = serverInfo();
    applyXclient(parameters("ADDR=[UNAVAILABLE]"), unknown);
    assert.equal(unknown.remoteIp, "");
  });

  test("a bad attribute changes nothing, even after good ones", () => {
    const server = serverInfo();
    const before = { ...server };
    assert.match(
      refusal(() => applyXclient(parameters("ADDR=192.0.2.7 NAME=x PORT=99999"), server)),
      /^501 /,
    );
    assert.deepEqual({ ...server }, before);
  });

  test("unknown attributes, attributes without a value, none at all, and bad xtext are refused", () => {
    assert.equal(
      refusal(() => applyXclient(parameters("IDENT=x"), serverInfo())),
      "501 5.5.4 Error: bad XCLIENT attribute name: IDENT",
    );
    assert.equal(
      refusal(() => applyXclient(parameters("NAME"), serverInfo())),
      "501 5.5.4 Error: NAME needs a value",
    );
    assert.equal(
      refusal(() => applyXclient(parameters(""), serverInfo())),
      "501 5.5.4 Syntax: XCLIENT attribute=value...",
    );
    assert.equal(
      refusal(() => applyXclient(parameters("HELO=a+zz"), serverInfo())),
      "501 5.5.4 Error: invalid HELO value",
    );
    const server = serverInfo();
    applyXclient(parameters("HELO=a+2Bb"), server);
    assert.equal(server.helo, "a+b", "values are xtext");
  });
});

describe("parseXforward", () => {
  test("each attribute is recorded in lower case, on top of what earlier XFORWARD commands said", () => {
    const first = parseXforward(parameters("NAME=mail.example ADDR=192.0.2.7"), {});
    const next = parseXforward(
      parameters("PORT=25 PROTO=ESMTP HELO=c.example IDENT=q1 SOURCE=REMOTE ADDR=IPV6:2001:db8::1"),
      first,
    );
    assert.deepEqual(first, { name: "mail.example", addr: "192.0.2.7" });
    assert.deepEqual(next, {
      name: "mail.example",
      addr: "IPV6:2001:db8::1",
      port: "25",
      proto: "ESMTP",
      helo: "c.example",
      ident: "q1",
      source: "REMOTE",
    });
    assert.deepEqual(parseXforward(parameters("NAME=[UNAVAILABLE]"), first), { name: "", addr: "192.0.2.7" });
  });

  test("ADDR and PORT are checked; LOGIN, an XCLIENT attribute, is not one of XFORWARD's", () => {
    assert.equal(
      refusal(() => parseXforward(parameters("ADDR=host"), {})),
      "501 5.5.4 Error: bad ADDR address",
    );
    assert.equal(
      refusal(() => parseXforward(parameters("PORT=70000"), {})),
      "501 5.5.4 Error: bad PORT",
    );
    assert.equal(
      refusal(() => parseXforward(parameters("LOGIN=x"), {})),
      "501 5.5.4 Error: bad XFORWARD attribute name: LOGIN",
    );
    assert.equal(
      refusal(() => parseXforward(parameters(""), {})),
      "501 5.5.4 Syntax: XFORWARD attribute=value...",
    );
  });
});
