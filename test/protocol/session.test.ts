/**
 * Transcript tests of the SMTP session (issue 2 section 2, with the hostile inputs of issue 6): exact bytes
 * in, exact reply bytes out, for every command, reply and transition of the state machine.
 */
import assert from "node:assert/strict";
import type { Readable } from "node:stream";
import { describe, test } from "node:test";
import type { SessionContext } from "../../src/protocol/context.js";
import { CRLF_MODES, type CrlfMode } from "../../src/protocol/data.js";
import { SmtpError } from "../../src/protocol/errors.js";
import type { SessionHooks } from "../../src/protocol/hooks.js";
import { openSession, TEST_CONFIG } from "../helpers/session-harness.js";

// ---- The replies, byte for byte -------------------------------------------------------------------

const GREETING = "220 mx.test ESMTP ready\r\n";
const EHLO_REPLY =
  "250-mx.test at your service\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n" +
  "250-SIZE 1048576\r\n250-ENHANCEDSTATUSCODES\r\n250 HELP\r\n";
const HELO_REPLY = "250 mx.test at your service\r\n";
const MAIL_OK = "250 2.1.0 Ok\r\n";
const RCPT_OK = "250 2.1.5 Ok\r\n";
const GO_AHEAD = '354 Enter message, ending with "." on a line by itself\r\n';
const ACCEPTED = "250 2.0.0 Ok: message accepted\r\n";
const OK = "250 2.0.0 Ok\r\n";
const BYE = "221 2.0.0 mx.test Service closing transmission channel\r\n";
const HELP_REPLY =
  "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY EXPN HELP\r\n" +
  "214 2.0.0 See RFC 5321 for their use\r\n";

const NEED_HELO = "503 5.5.1 Error: send HELO/EHLO first\r\n";
const NESTED_MAIL = "503 5.5.1 Error: nested MAIL command\r\n";
const NEED_MAIL = "503 5.5.1 Error: need MAIL command\r\n";
const NEED_RCPT = "503 5.5.1 Error: need RCPT command\r\n";
const NO_RECIPIENTS = "503 5.5.1 Error: no valid recipients\r\n";
const UNRECOGNISED = "500 5.5.2 Syntax error, command unrecognised\r\n";
const NOT_IMPLEMENTED = "502 5.5.1 Command not implemented\r\n";
const LINE_TOO_LONG = "500 5.5.2 Line too long\r\n";
const NUL_OR_CR = "501 5.5.2 Syntax error: NUL or bare CR in command\r\n";
const NEEDS_CRLF = "500 5.5.2 Syntax error: command lines must end with CRLF\r\n";
const INVALID_UTF8 = "500 5.5.2 Syntax error: invalid UTF-8 in command\r\n";
const NEEDS_SMTPUTF8 = "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter\r\n";
const SIZE_AT_MAIL = "552 5.3.4 Message size exceeds fixed maximum message size\r\n";
const SIZE_AT_DATA = "552 5.3.4 Error: message exceeds fixed maximum message size\r\n";
const BARE_LINE_BREAK = "550 5.5.2 Error: bare CR or LF in message data\r\n";
const TOO_MANY_RECIPIENTS = "452 4.5.3 Error: too many recipients\r\n";
const SYNC_ERROR = "554 5.5.0 Error: SMTP protocol synchronization\r\n";
const NO_PIPELINING = "500 5.5.0 Bad input: PIPELINING is not enabled\r\n";
const TOO_MANY_ERRORS = "421 4.7.0 mx.test Error: too many errors, closing connection\r\n";
const LOCAL_ERROR = "451 4.3.0 Requested action aborted: local error in processing\r\n";
const SERVICE_NOT_AVAILABLE = "421 4.3.2 Service not available, closing transmission channel\r\n";

type Options = Parameters<typeof openSession>[0];
type Session = Awaited<ReturnType<typeof openSession>>;

/** A session that has greeted with EHLO (answered with the default capability list). */
async function greeted(options: Options = {}): Promise<Session> {
  const t = await openSession(options);
  assert.equal(t.greeting, GREETING);
  await t.send("EHLO client.test\r\n");
  return t;
}

/** A session inside DATA: EHLO, MAIL, RCPT and DATA accepted. */
async function inData(options: Options = {}): Promise<Session> {
  const t = await greeted(options);
  assert.equal(
    await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"),
    MAIL_OK + RCPT_OK + GO_AHEAD,
  );
  return t;
}

/** A normal transaction on an open session, to prove the session still serves after an incident. */
async function assertServes(t: Session): Promise<void> {
  const count = t.messages.length;
  assert.equal(
    await t.send("MAIL FROM:<ok@x.test>\r\nRCPT TO:<ok@y.test>\r\nDATA\r\n"),
    MAIL_OK + RCPT_OK + GO_AHEAD,
  );
  assert.equal(await t.send("Subject: ok\r\n\r\nfine\r\n.\r\n"), ACCEPTED);
  assert.equal(t.messages.length, count + 1);
  const last = t.messages[count];
  assert.equal(last?.from, "ok@x.test");
  assert.deepEqual(last?.to, ["ok@y.test"]);
  assert.equal(last?.data.toString("latin1"), "Subject: ok\r\n\r\nfine\r\n");
  assert.equal(t.closed, false);
}

/** Lets pending callbacks and promise chains run. */
async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Waits (bounded) until the session has written past `before`, and returns what it wrote since. */
async function replyAfter(t: Session, before: number): Promise<string> {
  for (let i = 0; i < 10_000 && t.written.length === before && !t.closed; i++) await settle(1);
  await t.session.whenIdle();
  return t.written.slice(before).join("");
}

/** True when the bytes hold a CR not followed by LF or an LF not preceded by CR. */
function hasBareLineBreak(bytes: string): boolean {
  return /\r(?!\n)|(?<!\r)\n/.test(bytes);
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => {};
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

// ---- Greeting ----------------------------------------------------------------------------------

describe("greeting", () => {
  test("220 with the configured text", async () => {
    const t = await openSession();
    assert.equal(t.greeting, GREETING);
    assert.equal(t.closed, false);
  });

  test("an early talker (bytes before the greeting) gets 554 5.5.0 and is closed", async () => {
    const t = await openSession({ earlyInput: ["EHLO spambot.test\r\n"] });
    assert.equal(t.greeting, "554 5.5.0 Protocol error: data received before the greeting\r\n");
    assert.equal(t.closed, true);
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), "");
  });

  test("a connect hook throwing SmtpError 421 refuses the session", async () => {
    const t = await openSession({
      hooks: {
        onConnect: () => {
          throw new SmtpError(421, "mx.test Go away", "4.7.1");
        },
      },
    });
    assert.equal(t.greeting, "421 4.7.1 mx.test Go away\r\n");
    assert.equal(t.closed, true);
  });
});

// ---- HELO / EHLO -------------------------------------------------------------------------------

describe("HELO and EHLO", () => {
  test("HELO answers one line and records the client's name", async () => {
    const t = await openSession();
    assert.equal(await t.send("HELO client.test\r\n"), HELO_REPLY);
    assert.equal(t.ctx.server.helo, "client.test");
    assert.equal(t.ctx.server.heloCommand, "HELO");
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
  });

  test("EHLO answers the exact capability list", async () => {
    const t = await openSession();
    assert.equal(await t.send("EHLO client.test\r\n"), EHLO_REPLY);
    assert.equal(t.ctx.server.helo, "client.test");
    assert.equal(t.ctx.server.heloCommand, "EHLO");
  });

  test("EHLO with pipelining off does not offer PIPELINING", async () => {
    const t = await openSession({ config: { pipelining: false } });
    assert.equal(
      await t.send("EHLO client.test\r\n"),
      "250-mx.test at your service\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-SIZE 1048576\r\n" +
        "250-ENHANCEDSTATUSCODES\r\n250 HELP\r\n",
    );
  });

  test("EHLO with internationalization off offers neither 8BITMIME nor SMTPUTF8", async () => {
    const t = await openSession({ config: { internationalization: false } });
    assert.equal(
      await t.send("EHLO client.test\r\n"),
      "250-mx.test at your service\r\n250-PIPELINING\r\n250-SIZE 1048576\r\n" +
        "250-ENHANCEDSTATUSCODES\r\n250 HELP\r\n",
    );
  });

  test("SIZE carries maxMessageSize, and stands alone when the size is unlimited (0)", async () => {
    const sized = await openSession({ config: { maxMessageSize: 12345 } });
    assert.match(await sized.send("EHLO c\r\n"), /\r\n250-SIZE 12345\r\n/);
    const unlimited = await openSession({ config: { maxMessageSize: 0 } });
    assert.equal(
      await unlimited.send("EHLO c\r\n"),
      "250-mx.test at your service\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-SIZE\r\n" +
        "250-ENHANCEDSTATUSCODES\r\n250 HELP\r\n",
    );
  });

  test("EHLO and HELO without an argument get 501 and do not greet", async () => {
    const t = await openSession();
    assert.equal(await t.send("EHLO\r\n"), "501 5.5.4 Syntax: EHLO hostname\r\n");
    assert.equal(await t.send("HELO\r\n"), "501 5.5.4 Syntax: HELO hostname\r\n");
    assert.equal(await t.send("EHLO   \r\n"), "501 5.5.4 Syntax: EHLO hostname\r\n");
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), NEED_HELO);
  });

  test("verbs are case-insensitive", async () => {
    const t = await openSession();
    assert.equal(await t.send("ehlo client.test\r\n"), EHLO_REPLY);
    assert.equal(await t.send("mAiL from:<a@x.test>\r\n"), MAIL_OK);
    assert.equal(await t.send("rCpT tO:<b@y.test>\r\n"), RCPT_OK);
    assert.equal(await t.send("data\r\n"), GO_AHEAD);
    assert.equal(await t.send("hi\r\n.\r\n"), ACCEPTED);
    assert.equal(await t.send("Helo again.test\r\n"), HELO_REPLY);
    assert.equal(await t.send("nOoP\r\n"), OK);
    assert.equal(await t.send("quit\r\n"), BYE);
  });

  test("a second EHLO inside a transaction resets it: RCPT then gets 503", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"), MAIL_OK + RCPT_OK);
    assert.equal(await t.send("EHLO again.test\r\n"), EHLO_REPLY);
    assert.equal(t.ctx.envelope.from, "");
    assert.deepEqual(t.ctx.envelope.to, []);
    assert.equal(await t.send("RCPT TO:<c@y.test>\r\n"), NEED_MAIL);
    assert.equal(await t.send("DATA\r\n"), NEED_RCPT);
    assert.equal(t.ctx.server.helo, "again.test");
    await assertServes(t);
  });

  test("HELO inside a transaction resets it too", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
    assert.equal(await t.send("HELO again.test\r\n"), HELO_REPLY);
    assert.equal(await t.send("RCPT TO:<b@y.test>\r\n"), NEED_MAIL);
  });

  test("the helo hook sees the argument; an SmtpError from it is the reply", async () => {
    const seen: string[] = [];
    const t = await openSession({
      hooks: {
        onHelo: (_ctx, helo) => {
          seen.push(helo);
          if (helo === "bad.test") throw new SmtpError(550, "Go away", "5.7.1");
        },
      },
    });
    assert.equal(await t.send("EHLO bad.test\r\n"), "550 5.7.1 Go away\r\n");
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), NEED_HELO);
    assert.equal(await t.send("EHLO good.test\r\n"), EHLO_REPLY);
    assert.deepEqual(seen, ["bad.test", "good.test"]);
  });
});

// ---- MAIL --------------------------------------------------------------------------------------

describe("MAIL", () => {
  test("before HELO/EHLO: 503", async () => {
    const t = await openSession();
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), NEED_HELO);
  });

  test("nested MAIL: 503, the first transaction is kept", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
    assert.equal(await t.send("MAIL FROM:<other@x.test>\r\n"), NESTED_MAIL);
    assert.equal(t.ctx.envelope.from, "a@x.test");
    assert.equal(await t.send("RCPT TO:<b@y.test>\r\n"), RCPT_OK);
    assert.equal(await t.send("MAIL FROM:<other@x.test>\r\n"), NESTED_MAIL);
  });

  test("the null reverse-path <>", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<>\r\n"), MAIL_OK);
    assert.equal(t.ctx.envelope.from, "");
    assert.equal(await t.send("RCPT TO:<b@y.test>\r\nDATA\r\n"), RCPT_OK + GO_AHEAD);
    assert.equal(await t.send("bounce\r\n.\r\n"), ACCEPTED);
    assert.equal(t.messages[0]?.from, "");
  });

  test("a source route is accepted and ignored (RFC 5321 4.1.2)", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<@a.test,@b.test:u@c.test>\r\n"), MAIL_OK);
    assert.equal(t.ctx.envelope.from, "u@c.test");
    assert.equal(await t.send("RCPT TO:<@a.test:v@d.test>\r\n"), RCPT_OK);
    assert.deepEqual(t.ctx.envelope.to, ["v@d.test"]);
  });

  test("a quoted local part", async () => {
    const t = await greeted();
    assert.equal(await t.send('MAIL FROM:<"a b"@x.test>\r\n'), MAIL_OK);
    assert.equal(t.ctx.envelope.from, '"a b"@x.test');
    assert.equal(await t.send('RCPT TO:<"c>d"@y.test>\r\n'), RCPT_OK);
    assert.deepEqual(t.ctx.envelope.to, ['"c>d"@y.test']);
  });

  test("a space after the colon is tolerated", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM: <a@x.test>\r\n"), MAIL_OK);
    assert.equal(t.ctx.envelope.from, "a@x.test");
    assert.equal(await t.send("RCPT TO: <b@y.test>\r\n"), RCPT_OK);
  });

  test("syntax errors: missing '>', missing FROM:, bad mailbox", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a@x.test\r\n"), "501 5.1.7 Syntax error in address: missing >\r\n");
    assert.equal(await t.send("MAIL <a@x.test>\r\n"), "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
    assert.equal(await t.send("MAIL\r\n"), "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
    assert.equal(
      await t.send("MAIL FROM:<a.x.test>\r\n"),
      "501 5.1.7 Syntax error in mailbox: expected local-part@domain\r\n",
    );
    assert.equal(
      await t.send("MAIL FROM:<a@-x.test>\r\n"),
      "501 5.1.8 Syntax error in the domain of the mailbox\r\n",
    );
    assert.equal(
      await t.send("MAIL FROM:<a@x.test>SIZE=1\r\n"),
      "501 5.5.4 Syntax error: parameters must follow the address after a space\r\n",
    );
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
  });

  test("path limits: 256 octets with the brackets, 64 octets of local part (RFC 5321 4.5.3.1)", async () => {
    const t = await greeted();
    const local64 = "l".repeat(64);
    const domain = (length: number) => `${"d".repeat(60)}.`.repeat(3).concat("d".repeat(length - 183));
    const longest = `${local64}@${domain(189)}`; // 64 + 1 + 189 = 254 octets, 256 with < and >
    assert.equal(Buffer.byteLength(`<${longest}>`), 256);
    assert.equal(await t.send(`MAIL FROM:<${longest}>\r\n`), MAIL_OK);
    assert.equal(t.ctx.envelope.from, longest);
    assert.equal(await t.send("RSET\r\n"), OK);
    assert.equal(
      await t.send(`MAIL FROM:<${local64}@${domain(190)}>\r\n`),
      "501 5.1.7 Path too long (more than 256 octets)\r\n",
    );
    assert.equal(
      await t.send(`MAIL FROM:<${"l".repeat(65)}@x.test>\r\n`),
      "501 5.1.7 Local part too long (more than 64 octets)\r\n",
    );
    assert.equal(await t.send(`MAIL FROM:<${local64}@x.test>\r\n`), MAIL_OK);
    assert.equal(
      await t.send(`RCPT TO:<${local64}@${domain(190)}>\r\n`),
      "501 5.1.3 Path too long (more than 256 octets)\r\n",
    );
    assert.equal(
      await t.send(`RCPT TO:<${"l".repeat(65)}@x.test>\r\n`),
      "501 5.1.3 Local part too long (more than 64 octets)\r\n",
    );
  });

  test("BODY=7BIT and BODY=8BITMIME are recorded", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a@x.test> BODY=7BIT\r\n"), MAIL_OK);
    assert.equal(t.ctx.envelope.encodingBody, "7bit");
    assert.equal(await t.send("RSET\r\n"), OK);
    assert.equal(await t.send("MAIL FROM:<a@x.test> body=8bitmime\r\n"), MAIL_OK);
    assert.equal(t.ctx.envelope.encodingBody, "8bitmime");
    assert.equal(t.ctx.envelope.mailParams.BODY, "8bitmime");
    assert.equal(await t.send("RSET\r\n"), OK);
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
    assert.equal(t.ctx.envelope.encodingBody, "");
  });

  test("BODY=BINARYMIME (not offered) gets 501", async () => {
    const t = await greeted();
    assert.equal(
      await t.send("MAIL FROM:<a@x.test> BODY=BINARYMIME\r\n"),
      "501 5.5.4 Error: BODY must be 7BIT or 8BITMIME\r\n",
    );
    assert.equal(
      await t.send("MAIL FROM:<a@x.test> BODY\r\n"),
      "501 5.5.4 Error: BODY must be 7BIT or 8BITMIME\r\n",
    );
  });

  test("BODY and SMTPUTF8 with internationalization off get 555", async () => {
    const t = await greeted({ config: { internationalization: false } });
    assert.equal(
      await t.send("MAIL FROM:<a@x.test> BODY=8BITMIME\r\n"),
      "555 5.5.4 Unsupported parameter BODY\r\n",
    );
    assert.equal(
      await t.send("MAIL FROM:<a@x.test> SMTPUTF8\r\n"),
      "555 5.5.4 Unsupported parameter SMTPUTF8\r\n",
    );
    assert.equal(
      await t.send(Buffer.from("MAIL FROM:<ü@x.test>\r\n", "utf8")),
      NEEDS_SMTPUTF8,
      "no UTF-8 address at all without the extension",
    );
    assert.equal(await t.send("MAIL FROM:<a@x.test> SIZE=10\r\n"), MAIL_OK);
  });

  test("SMTPUTF8 is recorded; it takes no value", async () => {
    const t = await greeted();
    assert.equal(
      await t.send("MAIL FROM:<a@x.test> SMTPUTF8=yes\r\n"),
      "501 5.5.4 Error: SMTPUTF8 takes no value\r\n",
    );
    assert.equal(await t.send("MAIL FROM:<a@x.test> SMTPUTF8\r\n"), MAIL_OK);
    assert.equal(t.ctx.envelope.encodingUtf8, "utf8");
    assert.equal(t.ctx.envelope.mailParams.SMTPUTF8, true);
  });

  test("an unknown parameter gets 555, a duplicate one 501, a malformed one 501", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a@x.test> FOO=bar\r\n"), "555 5.5.4 Unsupported parameter FOO\r\n");
    assert.equal(
      await t.send("MAIL FROM:<a@x.test> RET=HDRS\r\n"),
      "555 5.5.4 Unsupported parameter RET\r\n",
    );
    assert.equal(
      await t.send("MAIL FROM:<a@x.test> SIZE=10 size=20\r\n"),
      "501 5.5.4 Duplicate parameter SIZE\r\n",
    );
    assert.equal(
      await t.send("MAIL FROM:<a@x.test> SIZE=a=b\r\n"),
      '501 5.5.4 Syntax error in parameter "SIZE=a=b"\r\n',
    );
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
  });

  test("SIZE=n is recorded; over maxMessageSize it gets 552 5.3.4 before any data (RFC 1870)", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a@x.test> SIZE=1048577\r\n"), SIZE_AT_MAIL);
    assert.equal(t.ctx.envelope.declaredSize, null);
    assert.equal(await t.send("RCPT TO:<b@y.test>\r\n"), NEED_MAIL, "no transaction was opened");
    assert.equal(await t.send("MAIL FROM:<a@x.test> SIZE=1048576\r\n"), MAIL_OK);
    assert.equal(t.ctx.envelope.declaredSize, 1048576);
    assert.equal(await t.send("RSET\r\n"), OK);
    assert.equal(await t.send("MAIL FROM:<a@x.test> SIZE=99999999999999999999\r\n"), SIZE_AT_MAIL);
  });

  test("SIZE with maxMessageSize 0 (unlimited) accepts any size", async () => {
    const t = await greeted({ config: { maxMessageSize: 0 } });
    assert.equal(await t.send("MAIL FROM:<a@x.test> SIZE=99999999999\r\n"), MAIL_OK);
    assert.equal(t.ctx.envelope.declaredSize, 99999999999);
  });

  test("SIZE that is not a number gets 501", async () => {
    const t = await greeted();
    const reply = "501 5.5.4 Error: SIZE must be a number of octets\r\n";
    assert.equal(await t.send("MAIL FROM:<a@x.test> SIZE=abc\r\n"), reply);
    assert.equal(await t.send("MAIL FROM:<a@x.test> SIZE\r\n"), reply);
    assert.equal(await t.send("MAIL FROM:<a@x.test> SIZE=-1\r\n"), reply);
    assert.equal(await t.send("MAIL FROM:<a@x.test> SIZE=1e3\r\n"), reply);
  });

  test("an 8-bit address without SMTPUTF8 gets 553 5.6.7; with SMTPUTF8 it is accepted", async () => {
    const t = await greeted();
    assert.equal(await t.send(Buffer.from("MAIL FROM:<ü@x.test>\r\n", "utf8")), NEEDS_SMTPUTF8);
    assert.equal(await t.send(Buffer.from("MAIL FROM:<a@bücher.test>\r\n", "utf8")), NEEDS_SMTPUTF8);
    assert.equal(await t.send(Buffer.from("MAIL FROM:<ü@x.test> SMTPUTF8\r\n", "utf8")), MAIL_OK);
    assert.equal(t.ctx.envelope.from, "ü@x.test");
    assert.equal(await t.send(Buffer.from("RCPT TO:<δοκιμή@παράδειγμα.test>\r\n", "utf8")), RCPT_OK);
    assert.deepEqual(t.ctx.envelope.to, ["δοκιμή@παράδειγμα.test"]);
  });

  test("an 8-bit recipient in a transaction without SMTPUTF8 gets 553 5.6.7", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
    assert.equal(await t.send(Buffer.from("RCPT TO:<ü@y.test>\r\n", "utf8")), NEEDS_SMTPUTF8);
    assert.deepEqual(t.ctx.envelope.to, []);
  });

  test("a refused MAIL leaves nothing behind: SMTPUTF8 of a 555'd MAIL does not license the next", async () => {
    const t = await greeted();
    assert.equal(
      await t.send("MAIL FROM:<a@x.test> SMTPUTF8 BODY=8BITMIME SIZE=10 FOO=1\r\n"),
      "555 5.5.4 Unsupported parameter FOO\r\n",
    );
    assert.equal(await t.send(Buffer.from("MAIL FROM:<ü@x.test>\r\n", "utf8")), NEEDS_SMTPUTF8);
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
    assert.equal(t.ctx.envelope.encodingUtf8, "");
    assert.equal(t.ctx.envelope.encodingBody, "");
    assert.equal(t.ctx.envelope.declaredSize, null);
  });

  test("invalid UTF-8 bytes in a command get 500", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<\xff@x.test> SMTPUTF8\r\n"), INVALID_UTF8);
    assert.equal(await t.send(Buffer.from([0x4e, 0x4f, 0x4f, 0x50, 0x20, 0xc3, 0x28, 13, 10])), INVALID_UTF8);
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
  });
});

// ---- RCPT --------------------------------------------------------------------------------------

describe("RCPT", () => {
  test("before MAIL: 503 (also before HELO)", async () => {
    const fresh = await openSession();
    assert.equal(await fresh.send("RCPT TO:<b@y.test>\r\n"), NEED_MAIL);
    const t = await greeted();
    assert.equal(await t.send("RCPT TO:<b@y.test>\r\n"), NEED_MAIL);
  });

  test("<Postmaster> without a domain is accepted", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
    assert.equal(await t.send("RCPT TO:<Postmaster>\r\n"), RCPT_OK);
    assert.equal(await t.send("RCPT TO:<postmaster>\r\n"), RCPT_OK);
    assert.deepEqual(t.ctx.envelope.to, ["Postmaster", "postmaster"]);
  });

  test("the null path <> is not a recipient: 501; bad syntax 501", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
    assert.equal(await t.send("RCPT TO:<>\r\n"), "501 5.1.3 Syntax error: empty recipient\r\n");
    assert.equal(await t.send("RCPT <b@y.test>\r\n"), "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
    assert.equal(await t.send("RCPT TO:\r\n"), "501 5.1.3 Syntax error: missing address\r\n");
    assert.equal(await t.send("RCPT TO:<b@y.test\r\n"), "501 5.1.3 Syntax error in address: missing >\r\n");
    assert.equal(
      await t.send("RCPT TO:<b@>\r\n"),
      "501 5.1.3 Syntax error in mailbox: expected local-part@domain\r\n",
    );
    assert.equal(
      await t.send("RCPT TO:<b@-y.test>\r\n"),
      "501 5.1.2 Syntax error in the domain of the mailbox\r\n",
    );
    assert.deepEqual(t.ctx.envelope.to, []);
    assert.equal(await t.send("DATA\r\n"), NO_RECIPIENTS);
  });

  test("RCPT parameters get 555 and the recipient is not added", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
    assert.equal(
      await t.send("RCPT TO:<b@y.test> NOTIFY=NEVER\r\n"),
      "555 5.5.4 Unsupported parameter NOTIFY\r\n",
    );
    assert.deepEqual(t.ctx.envelope.to, []);
    assert.equal(await t.send("RCPT TO:<b@y.test>\r\n"), RCPT_OK);
  });

  test("exactly maxRecipients are accepted, then 452 4.5.3; DATA delivers to all of them", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
    let batch = "";
    for (let i = 1; i <= 101; i++) batch += `RCPT TO:<r${i}@y.test>\r\n`;
    assert.equal(await t.send(batch), RCPT_OK.repeat(100) + TOO_MANY_RECIPIENTS);
    assert.equal(t.ctx.envelope.to.length, 100);
    assert.equal(await t.send("RCPT TO:<more@y.test>\r\n"), TOO_MANY_RECIPIENTS);
    assert.equal(await t.send("DATA\r\n"), GO_AHEAD);
    assert.equal(await t.send("hi\r\n.\r\n"), ACCEPTED);
    const expected = Array.from({ length: 100 }, (_, i) => `r${i + 1}@y.test`);
    assert.deepEqual(t.messages[0]?.to, expected);
    assert.equal(t.closed, false, "452 does not count as a bad command");
  });

  test("a smaller maxRecipients is enforced the same way", async () => {
    const t = await greeted({ config: { maxRecipients: 2 } });
    assert.equal(
      await t.send(
        "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nRCPT TO:<d@y.test>\r\n",
      ),
      MAIL_OK + RCPT_OK + RCPT_OK + TOO_MANY_RECIPIENTS,
    );
    assert.deepEqual(t.ctx.envelope.to, ["b@y.test", "c@y.test"]);
  });
});

// ---- DATA --------------------------------------------------------------------------------------

describe("DATA", () => {
  test("before MAIL and before RCPT: 503", async () => {
    const t = await greeted();
    assert.equal(await t.send("DATA\r\n"), NEED_RCPT);
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
    assert.equal(await t.send("DATA\r\n"), NO_RECIPIENTS);
    assert.equal(await t.send("RCPT TO:<b@y.test>\r\n"), RCPT_OK);
    assert.equal(await t.send("DATA\r\n"), GO_AHEAD);
  });

  test("DATA with arguments: 501", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"), MAIL_OK + RCPT_OK);
    assert.equal(await t.send("DATA now\r\n"), "501 5.5.4 Syntax: DATA takes no arguments\r\n");
    assert.equal(await t.send("DATA\r\n"), GO_AHEAD);
  });

  test("the message is delivered byte-exact, dot-unstuffed, with its envelope", async () => {
    const t = await inData();
    let octets = "";
    for (let b = 0; b < 256; b++) if (b !== 10 && b !== 13) octets += String.fromCharCode(b);
    const message = `Subject: all octets\r\n\r\n${octets}\r\n.leading dot\r\n..\r\nend.\r\n. \r\n`;
    const stuffed = message.replace(/^\./gm, "..");
    assert.equal(await t.send(`${stuffed}.\r\n`), ACCEPTED);
    assert.equal(t.messages.length, 1);
    assert.equal(t.messages[0]?.from, "a@x.test");
    assert.deepEqual(t.messages[0]?.to, ["b@y.test"]);
    assert.deepEqual(t.messages[0]?.data, Buffer.from(message, "latin1"));
    assert.equal(t.ctx.envelope.from, "", "the transaction is over");
    assert.equal(await t.send("RCPT TO:<c@y.test>\r\n"), NEED_MAIL);
  });

  test("an empty message, and the end of data split one byte per write", async () => {
    const t = await inData();
    assert.equal(await t.send(".\r\n"), ACCEPTED);
    assert.equal(t.messages[0]?.data.length, 0);
    assert.equal(
      await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"),
      MAIL_OK + RCPT_OK + GO_AHEAD,
    );
    assert.equal(await t.send("a", "\r", "\n", ".", "\r"), "");
    assert.equal(await t.send("\n"), ACCEPTED);
    assert.equal(t.messages[1]?.data.toString(), "a\r\n");
  });

  test("a message at exactly maxMessageSize is accepted; one octet more gets 552", async () => {
    const t = await greeted({ config: { maxMessageSize: 1000 } });
    const exact = `${"x".repeat(998)}\r\n`;
    assert.equal(
      await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"),
      MAIL_OK + RCPT_OK + GO_AHEAD,
    );
    assert.equal(await t.send(`${exact}.\r\n`), ACCEPTED);
    assert.equal(t.messages[0]?.data.length, 1000);
    assert.equal(
      await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"),
      MAIL_OK + RCPT_OK + GO_AHEAD,
    );
    assert.equal(await t.send(`y${exact}.\r\n`), SIZE_AT_DATA);
    assert.equal(t.messages.length, 1);
  });

  test("bytes a hook inserts count neither in bytesize nor toward maxMessageSize (RFC 1870 sizes the client's)", async () => {
    const sizes: number[] = [];
    const received = "Received: from client.test by mx.test\r\n";
    const t = await greeted({
      config: { maxMessageSize: 1000 },
      hooks: {
        onMessageDataStart: (ctx) => ctx.message.write(received),
        onMessageDataHeaders: (ctx) => ctx.message.write("X-Checked: yes\r\n"),
        onMessageData: (ctx) => {
          sizes.push(ctx.message.bytesize, ctx.message.data.length);
        },
      },
    });
    const exact = `Subject: s\r\n\r\n${"x".repeat(984)}\r\n`; // 1000 octets from the client
    assert.equal(
      await t.send("MAIL FROM:<a@x.test> SIZE=1000\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"),
      MAIL_OK + RCPT_OK + GO_AHEAD,
    );
    assert.equal(await t.send(`${exact}.\r\n`), ACCEPTED);
    assert.deepEqual(sizes, [1000, 1000 + received.length + "X-Checked: yes\r\n".length]);
  });

  test("an oversize message is read to its end, answered 552 (never 250), and the session goes on", async () => {
    const t = await inData({ config: { maxMessageSize: 10_000 } });
    const line = `${"z".repeat(98)}\r\n`;
    const chunks: string[] = [];
    for (let i = 0; i < 50; i++) chunks.push(line.repeat(10)); // 50,000 octets in 50 writes
    assert.equal(await t.send(...chunks), "", "no reply before the end of the data");
    assert.equal(t.closed, false);
    assert.equal(await t.send("MAIL FROM:<inside@x.test>\r\n.\r\n"), SIZE_AT_DATA);
    assert.equal(t.messages.length, 0);
    await assertServes(t);
  });

  test("the oversize 552 wins over a hook that would accept", async () => {
    const t = await inData({
      config: { maxMessageSize: 100 },
      hooks: { onMessageData: () => "accepted anyway" },
    });
    assert.equal(await t.send(`${"q".repeat(200)}\r\n.\r\n`), SIZE_AT_DATA);
  });

  test("strict mode: a bare LF gets 550 5.5.2 after the real end, nothing delivered", async () => {
    const t = await inData({ config: { crlfMode: "strict" } });
    assert.equal(await t.send("Subject: x\r\n\r\nline one\nline two\r\n"), "");
    assert.equal(await t.send(".\r\n"), BARE_LINE_BREAK);
    assert.equal(t.messages.length, 0);
    await assertServes(t);
  });

  test("bare CR and LF: ensure normalises to CRLF, leave keeps them", async () => {
    const body = "a\nb\rc\r\n";
    const ensure = await inData({ config: { crlfMode: "ensure" } });
    assert.equal(await ensure.send(`${body}.\r\n`), ACCEPTED);
    assert.equal(ensure.messages[0]?.data.toString("latin1"), "a\r\nbc\r\n");
    const leave = await inData({ config: { crlfMode: "leave" } });
    assert.equal(await leave.send(`${body}.\r\n`), ACCEPTED);
    assert.equal(leave.messages[0]?.data.toString("latin1"), body);
  });
});

// ---- RSET, NOOP, HELP, VRFY, EXPN, QUIT, unknown and unoffered verbs ---------------------------------

describe("RSET", () => {
  test("250 and clears the transaction", async () => {
    const t = await greeted();
    assert.equal(
      await t.send("MAIL FROM:<a@x.test> SIZE=5\r\nRCPT TO:<b@y.test>\r\nRSET\r\n"),
      MAIL_OK + RCPT_OK + OK,
    );
    assert.equal(t.ctx.envelope.from, "");
    assert.deepEqual(t.ctx.envelope.to, []);
    assert.equal(t.ctx.envelope.declaredSize, null);
    assert.equal(await t.send("RCPT TO:<b@y.test>\r\n"), NEED_MAIL);
    assert.equal(await t.send("DATA\r\n"), NEED_RCPT);
    assert.equal(await t.send("MAIL FROM:<c@x.test>\r\n"), MAIL_OK, "no nested MAIL after RSET");
  });

  test("before HELO it answers 250 and keeps the session ungreeted", async () => {
    const t = await openSession();
    assert.equal(await t.send("RSET\r\n"), OK);
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), NEED_HELO);
  });

  test("with an argument: 501, the transaction is kept", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
    assert.equal(await t.send("RSET now\r\n"), "501 5.5.4 Syntax: RSET takes no arguments\r\n");
    assert.equal(t.ctx.envelope.from, "a@x.test");
    assert.equal(await t.send("RCPT TO:<b@y.test>\r\n"), RCPT_OK);
  });
});

describe("NOOP and HELP", () => {
  test("NOOP answers 250 in every state, with or without an argument", async () => {
    const t = await openSession();
    assert.equal(await t.send("NOOP\r\n"), OK);
    assert.equal(await t.send("NOOP anything at all\r\n"), OK);
    await t.send("EHLO c\r\n");
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
    assert.equal(await t.send("NOOP\r\n"), OK);
    assert.equal(t.ctx.envelope.from, "a@x.test", "NOOP does not touch the transaction");
  });

  test("HELP answers 214", async () => {
    const t = await openSession();
    assert.equal(await t.send("HELP\r\n"), HELP_REPLY);
    assert.equal(await t.send("HELP MAIL\r\n"), HELP_REPLY);
  });
});

describe("VRFY and EXPN", () => {
  test("VRFY without a hook: 252, never 250 (RFC 5321 3.5.3)", async () => {
    const t = await greeted();
    assert.equal(
      await t.send("VRFY postmaster\r\n"),
      "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\r\n",
    );
  });

  test("VRFY with an onVrfy hook: 250 with the hook's mailbox; its SmtpError is the reply", async () => {
    const t = await greeted({
      hooks: {
        onVrfy: (_ctx, argument) => {
          if (argument === "nobody") throw new SmtpError(550, "No such user", "5.1.1");
          return `Jane Doe <${argument}@x.test>`;
        },
      },
    });
    assert.equal(await t.send("VRFY jane\r\n"), "250 2.1.5 Jane Doe <jane@x.test>\r\n");
    assert.equal(await t.send("VRFY nobody\r\n"), "550 5.1.1 No such user\r\n");
  });

  test("VRFY without an argument: 501", async () => {
    const t = await greeted();
    assert.equal(await t.send("VRFY\r\n"), "501 5.5.4 Syntax: VRFY address\r\n");
  });

  test("EXPN without a hook: 502; without an argument: 501", async () => {
    const t = await greeted();
    assert.equal(await t.send("EXPN staff\r\n"), "502 5.5.1 EXPN not available\r\n");
    assert.equal(await t.send("EXPN\r\n"), "501 5.5.4 Syntax: EXPN list\r\n");
  });

  test("EXPN with a hook: a multi-line 250, or 550 for an empty list", async () => {
    const t = await greeted({
      hooks: { onExpn: (_ctx, list) => (list === "staff" ? ["<a@x.test>", "<b@x.test>"] : []) },
    });
    assert.equal(await t.send("EXPN staff\r\n"), "250-2.1.5 <a@x.test>\r\n250 2.1.5 <b@x.test>\r\n");
    assert.equal(await t.send("EXPN nobody\r\n"), "550 5.1.1 No such list\r\n");
  });
});

describe("QUIT", () => {
  test("221 then closed; nothing more is answered", async () => {
    const t = await greeted();
    assert.equal(await t.send("QUIT\r\n"), BYE);
    assert.equal(t.closed, true);
    assert.equal(await t.send("NOOP\r\n"), "");
  });

  test("QUIT inside a transaction abandons it", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"), MAIL_OK + RCPT_OK);
    assert.equal(await t.send("QUIT\r\n"), BYE);
    assert.equal(t.closed, true);
    assert.equal(t.messages.length, 0);
  });

  test("QUIT with an argument: 501 and the session stays open", async () => {
    const t = await greeted();
    assert.equal(await t.send("QUIT now\r\n"), "501 5.5.4 Syntax: QUIT takes no arguments\r\n");
    assert.equal(t.closed, false);
    assert.equal(await t.send("QUIT\r\n"), BYE);
  });
});

describe("unknown and unoffered verbs", () => {
  test("an unknown verb goes through onProcessLineUnknown, then 500", async () => {
    const lines: string[] = [];
    const t = await greeted({ hooks: { onProcessLineUnknown: (_ctx, line) => void lines.push(line) } });
    assert.equal(await t.send("FOO bar baz\r\n"), UNRECOGNISED);
    assert.equal(await t.send("\r\n"), UNRECOGNISED, "an empty line is no command either");
    assert.deepEqual(lines, ["FOO bar baz", ""]);
    assert.equal(t.ctx.server.exceptions, 2);
    await assertServes(t);
  });

  test("onProcessLineUnknown throwing SmtpError 421 drops the client (the seed's DoS guard)", async () => {
    const t = await greeted({
      hooks: {
        onProcessLineUnknown: (ctx) => {
          if (ctx.server.exceptions >= 2)
            throw new SmtpError(421, "mx.test Too many unknown commands", "4.7.0");
        },
      },
    });
    assert.equal(await t.send("FOO\r\n"), UNRECOGNISED);
    assert.equal(await t.send("BAR\r\n"), UNRECOGNISED);
    assert.equal(await t.send("BAZ\r\nNOOP\r\n"), "421 4.7.0 mx.test Too many unknown commands\r\n");
    assert.equal(t.closed, true);
  });

  test("STARTTLS, AUTH and BDAT are known but not offered: 502", async () => {
    const t = await greeted();
    assert.equal(await t.send("STARTTLS\r\n"), NOT_IMPLEMENTED);
    assert.equal(await t.send("AUTH PLAIN AGFAYg==\r\n"), NOT_IMPLEMENTED);
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"), MAIL_OK + RCPT_OK);
    assert.equal(await t.send("BDAT 5 LAST\r\n"), NOT_IMPLEMENTED);
    assert.equal(t.ctx.envelope.to.length, 1, "the transaction survives");
  });

  test("an HTTP request gets 421 and is closed at once", async () => {
    const t = await openSession();
    assert.equal(
      await t.send("GET / HTTP/1.1\r\nHost: mx.test\r\n\r\n"),
      "421 4.7.0 mx.test Error: this is an SMTP server\r\n",
    );
    assert.equal(t.closed, true);
  });

  test("POST after EHLO is treated the same", async () => {
    const t = await greeted();
    assert.equal(await t.send("POST /x HTTP/1.0\r\n"), "421 4.7.0 mx.test Error: this is an SMTP server\r\n");
    assert.equal(t.closed, true);
  });
});

// ---- Command line limits and hostile bytes -----------------------------------------------------

describe("command line limits", () => {
  test("512 octets with CRLF are accepted; 513 get 500 5.5.2 and the session goes on", async () => {
    const t = await greeted();
    const at = (octets: number) => `NOOP ${"x".repeat(octets - 7)}\r\n`;
    assert.equal(at(512).length, 512);
    assert.equal(await t.send(at(512)), OK);
    assert.equal(await t.send(at(513)), LINE_TOO_LONG);
    assert.equal(await t.send(`MAIL FROM:<a@x.test> ${"X".repeat(600)}\r\nNOOP\r\n`), LINE_TOO_LONG + OK);
    await assertServes(t);
  });

  test("an over-long line arriving in pieces is answered once, at its end", async () => {
    const t = await greeted();
    assert.equal(await t.send("x".repeat(400), "y".repeat(400), "z".repeat(400)), "");
    assert.equal(await t.send("tail\r\nNOOP\r\n"), LINE_TOO_LONG + OK);
    await assertServes(t);
  });

  test("5 MB without a newline: 421 as soon as ioBufferMaxSize is passed, nothing buffered", async () => {
    const ioBufferMaxSize = 100 * 1024;
    const t = await greeted({ config: { ioBufferMaxSize } });
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    const chunks = (5 * 1024 * 1024) / chunk.length;
    const closingChunk = Math.floor(ioBufferMaxSize / chunk.length); // the first one past the limit
    for (let i = 0; i < chunks; i++) {
      const reply = await t.send(chunk);
      if (i < closingChunk) {
        assert.equal(reply, "", `nothing after chunk ${i}`);
        assert.equal(t.closed, false);
      } else if (i === closingChunk) {
        assert.equal(reply, "421 4.7.0 mx.test Error: line too long, closing connection\r\n");
        assert.equal(t.closed, true);
      } else {
        assert.equal(reply, "");
      }
    }
    assert.equal(await t.send("\r\nNOOP\r\n"), "");
  });

  test("5 MB without a newline with the default 1 MiB ioBufferMaxSize closes after 1 MiB", async () => {
    const t = await greeted();
    const chunk = Buffer.alloc(64 * 1024, 0x42);
    let sent = 0;
    let closedAfter = -1;
    while (sent < 5 * 1024 * 1024 && !t.closed) {
      const reply = await t.send(chunk);
      sent += chunk.length;
      if (t.closed) {
        closedAfter = sent;
        assert.equal(reply, "421 4.7.0 mx.test Error: line too long, closing connection\r\n");
      } else {
        assert.equal(reply, "");
      }
    }
    assert.equal(closedAfter, 1024 * 1024 + chunk.length);
  });

  test("NUL in a command is refused, never truncated at the NUL", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a\x00b@x.test>\r\n"), NUL_OR_CR);
    assert.equal(t.ctx.envelope.from, "");
    assert.equal(await t.send("RCPT TO:<b@y.test>\r\n"), NEED_MAIL, "no MAIL was accepted");
    assert.equal(await t.send("EH\x00LO t\r\n"), NUL_OR_CR);
    assert.equal(t.ctx.server.helo, "client.test");
    assert.equal(await t.send("MAIL FROM:<a@x.test>\x00 SIZE=1\r\n"), NUL_OR_CR);
    await assertServes(t);
  });

  test("a CR inside a command is refused (no header injection through MAIL FROM)", async () => {
    const t = await greeted();
    assert.equal(await t.send("MAIL FROM:<a@x.test>\rX-Injected: 1\r\n"), NUL_OR_CR);
    assert.equal(t.ctx.envelope.from, "");
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
    assert.equal(await t.send("RCPT TO:<b@y.test>\rRCPT TO:<c@y.test>\r\n"), NUL_OR_CR);
    assert.deepEqual(t.ctx.envelope.to, []);
  });

  for (const mode of ["ensure", "leave"] as const) {
    test(`bare-LF command terminators are accepted in ${mode} mode`, async () => {
      const t = await openSession({ config: { crlfMode: mode } });
      assert.equal(await t.send("EHLO t\n"), EHLO_REPLY);
      assert.equal(
        await t.send("MAIL FROM:<a@x.test>\nRCPT TO:<b@y.test>\nDATA\n"),
        MAIL_OK + RCPT_OK + GO_AHEAD,
      );
      assert.equal(await t.send("hi\r\n.\r\n"), ACCEPTED);
      assert.equal(await t.send("QUIT\n"), BYE);
    });
  }

  test("bare-LF command terminators are refused with 500 in strict mode", async () => {
    const t = await openSession({ config: { crlfMode: "strict" } });
    assert.equal(await t.send("EHLO t\n"), NEEDS_CRLF);
    assert.equal(await t.send("EHLO t\r\n"), EHLO_REPLY);
    assert.equal(await t.send("MAIL FROM:<a@x.test>\nRCPT TO:<b@y.test>\n"), NEEDS_CRLF + NEEDS_CRLF);
    assert.deepEqual(t.ctx.envelope.to, []);
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
  });
});

describe("maxBadCommands", () => {
  test("after maxBadCommands bad commands the next one gets its reply, then 421 and close", async () => {
    const t = await greeted({ config: { maxBadCommands: 3 } });
    assert.equal(await t.send("FOO\r\n"), UNRECOGNISED);
    assert.equal(await t.send("RCPT TO:<b@y.test>\r\n"), NEED_MAIL);
    assert.equal(await t.send("MAIL FROM:<a@x.test> FOO=1\r\n"), "555 5.5.4 Unsupported parameter FOO\r\n");
    assert.equal(t.closed, false);
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK, "good commands still work");
    assert.equal(await t.send("BAR\r\n"), UNRECOGNISED + TOO_MANY_ERRORS);
    assert.equal(t.closed, true);
  });

  test("30 junk commands close the session with 421 (default limit 20)", async () => {
    const t = await greeted();
    let junk = "";
    for (let i = 0; i < 30; i++) junk += `JUNK${i} xyz\r\n`;
    assert.equal(await t.send(junk), UNRECOGNISED.repeat(21) + TOO_MANY_ERRORS);
    assert.equal(t.closed, true);
  });
});

// ---- Pipelining (RFC 2920) ---------------------------------------------------------------------

describe("pipelining", () => {
  test("on: MAIL, RCPT, RCPT, DATA in one chunk are answered in order in one write", async () => {
    const t = await greeted();
    const before = t.written.length;
    assert.equal(
      await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n"),
      MAIL_OK + RCPT_OK + RCPT_OK + GO_AHEAD,
    );
    assert.equal(t.written.length, before + 1, "one write for the whole group");
    assert.equal(await t.send("hi\r\n.\r\n"), ACCEPTED);
    assert.deepEqual(t.messages[0]?.to, ["b@y.test", "c@y.test"]);
  });

  test("on: errors inside a group are answered in place, still in one write", async () => {
    const t = await greeted();
    const before = t.written.length;
    assert.equal(
      await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<>\r\nRCPT TO:<c@y.test>\r\nRSET\r\n"),
      `${MAIL_OK}501 5.1.3 Syntax error: empty recipient\r\n${RCPT_OK}${OK}`,
    );
    assert.equal(t.written.length, before + 1);
  });

  test("on: message content sent before the 354 gets 554 5.5.0 and close, nothing delivered", async () => {
    const t = await greeted();
    assert.equal(
      await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n"),
      MAIL_OK + RCPT_OK + SYNC_ERROR,
    );
    assert.equal(t.closed, true);
    assert.equal(t.messages.length, 0);
  });

  test("on: EHLO followed by more input gets 554 and close", async () => {
    const t = await openSession();
    assert.equal(await t.send("EHLO c\r\nMAIL FROM:<a@x.test>\r\n"), SYNC_ERROR);
    assert.equal(t.closed, true);
  });

  test("on: QUIT followed by more input gets 221 (RFC 5321 4.1.1.10), NOOP gets 554; both close", async () => {
    const quit = await greeted();
    assert.equal(await quit.send("QUIT\r\nNOOP\r\n"), BYE);
    assert.equal(quit.closed, true);
    const noop = await greeted();
    assert.equal(
      await noop.send("MAIL FROM:<a@x.test>\r\nNOOP\r\nRCPT TO:<b@y.test>\r\n"),
      MAIL_OK + SYNC_ERROR,
    );
    assert.equal(noop.closed, true);
  });

  test("off: two commands in one chunk: the first gets the pipelining error", async () => {
    const t = await greeted({ config: { pipelining: false } });
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"), NO_PIPELINING + NEED_MAIL);
    assert.equal(t.ctx.envelope.from, "", "the pipelined MAIL was not executed");
    assert.equal(t.closed, false);
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
    assert.equal(await t.send("RCPT TO:<b@y.test>\r\n"), RCPT_OK);
    assert.equal(await t.send("DATA\r\n"), GO_AHEAD);
    assert.equal(await t.send("hi\r\n.\r\n"), ACCEPTED);
  });

  test("off: message content sent before the 354 is never taken as a message", async () => {
    const t = await greeted({ config: { pipelining: false } });
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
    assert.equal(await t.send("RCPT TO:<b@y.test>\r\n"), RCPT_OK);
    assert.equal(
      await t.send("DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n"),
      NO_PIPELINING.repeat(4) + UNRECOGNISED,
    );
    assert.equal(t.messages.length, 0);
    assert.deepEqual(t.ctx.envelope.to, ["b@y.test"], "the transaction is still waiting for DATA");
  });

  test("off: EHLO followed by more input gets the pipelining error", async () => {
    const t = await openSession({ config: { pipelining: false } });
    assert.equal(await t.send("EHLO c\r\nNOOP\r\n"), NO_PIPELINING + OK);
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), NEED_HELO);
  });
});

// ---- SMTP smuggling ----------------------------------------------------------------------------

const SMUGGLING_EODS = [
  "\n.\n",
  "\n.\r\n",
  "\r\n.\n",
  "\r.\r",
  "\r.\n",
  "\n.\r",
  "\r.\r\n",
  "\r\n.\r",
  "\r\n\x00.\r\n",
  "\r\n.\x00\r\n",
  "\r\n.\r\r\n",
  "\r\r\n.\r\r\n",
];
const SMUGGLED =
  "MAIL FROM:<evil@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nhi\r\n.\r\n";

describe("no SMTP smuggling", () => {
  for (const mode of CRLF_MODES) {
    for (const eod of SMUGGLING_EODS) {
      test(`${mode}: ${JSON.stringify(eod)} does not end DATA`, async () => {
        const t = await inData({ config: { crlfMode: mode as CrlfMode } });
        const payload = `body${eod}${SMUGGLED}`;
        // Strict mode rejects what carries a bare CR or LF; the NUL variants have none and are plain data.
        const rejected = mode === "strict" && hasBareLineBreak(payload);
        assert.equal(await t.send(payload), rejected ? BARE_LINE_BREAK : ACCEPTED, "exactly one reply");
        assert.ok(t.messages.length <= 1);
        if (rejected) {
          assert.equal(t.messages.length, 0);
        } else {
          const data = t.messages[0]?.data.toString("latin1") ?? "";
          assert.equal(t.messages[0]?.from, "a@x.test");
          assert.match(data, /MAIL FROM:<evil@x\.test>\r\nRCPT TO:<b@y\.test>\r\nDATA\r\nSubject: smuggled/);
          assert.ok(data.endsWith("hi\r\n"));
          if (mode === "ensure") assert.equal(hasBareLineBreak(data), false, "normalised to CRLF");
        }
        assert.equal(t.ctx.envelope.from, "");
        await assertServes(t);
        assert.ok(t.messages.every((m) => m.from !== "evil@x.test"));
      });
    }
  }

  test("a dot is unstuffed only at the start of a real line", async () => {
    const t = await inData({ config: { crlfMode: "leave" } });
    assert.equal(await t.send("line\n..\r\n.\r\n"), ACCEPTED);
    assert.equal(t.messages[0]?.data.toString("latin1"), "line\n..\r\n");
  });

  test("the real end split as CRLF-dot and CRLF still ends DATA", async () => {
    const t = await inData();
    assert.equal(await t.send("body\r\n.", "\r\n"), ACCEPTED);
    assert.equal(t.messages[0]?.data.toString("latin1"), "body\r\n");
  });
});

// ---- Hooks -------------------------------------------------------------------------------------

describe("hooks", () => {
  test("onMailFrom and onRcptTo returning a string replace the address", async () => {
    const t = await greeted({
      hooks: {
        onMailFrom: (_ctx, address) => address.toLowerCase(),
        onRcptTo: (_ctx, address) => (address === "alias@y.test" ? "real@y.test" : undefined),
      },
    });
    assert.equal(
      await t.send("MAIL FROM:<Sender@X.TEST>\r\nRCPT TO:<alias@y.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"),
      MAIL_OK + RCPT_OK + RCPT_OK + GO_AHEAD,
    );
    assert.equal(t.ctx.envelope.from, "sender@x.test");
    assert.deepEqual(t.ctx.envelope.to, ["real@y.test", "b@y.test"]);
    assert.equal(await t.send("hi\r\n.\r\n"), ACCEPTED);
    assert.equal(t.messages[0]?.from, "sender@x.test");
  });

  test("onMailFrom and onRcptTo see the ESMTP parameters", async () => {
    const seen: unknown[] = [];
    const t = await greeted({
      hooks: { onMailFrom: (_ctx, _address, params) => void seen.push({ ...params }) },
    });
    assert.equal(await t.send("MAIL FROM:<a@x.test> SIZE=42 BODY=8BITMIME\r\n"), MAIL_OK);
    assert.deepEqual(seen, [{ SIZE: "42", BODY: "8BITMIME" }]);
  });

  test("onRcptTo throwing SmtpError.code(550): 550 5.1.1 and the recipient is not added", async () => {
    const t = await greeted({
      hooks: {
        onRcptTo: (_ctx, address) => {
          if (address === "blocked@y.test") throw SmtpError.code(550);
        },
      },
    });
    assert.equal(
      await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<blocked@y.test>\r\nRCPT TO:<b@y.test>\r\n"),
      `${MAIL_OK}550 5.1.1 Requested action not taken: mailbox unavailable\r\n${RCPT_OK}`,
    );
    assert.deepEqual(t.ctx.envelope.to, ["b@y.test"]);
  });

  test("a plain Error from onRcptTo: 451 without its text, counted in ctx.server.exceptions", async () => {
    const failure = new Error("database password is hunter2");
    const t = await greeted({
      hooks: {
        onRcptTo: () => {
          throw failure;
        },
      },
    });
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
    const reply = await t.send("RCPT TO:<b@y.test>\r\n");
    assert.equal(reply, LOCAL_ERROR);
    assert.doesNotMatch(reply, /hunter2/);
    assert.deepEqual(t.ctx.envelope.to, []);
    assert.equal(t.ctx.server.exceptions, 1);
    assert.equal(t.ctx.server.errors[0], failure);
    assert.ok(
      t.logs.some((line) => line.startsWith("error:") && line.includes("hunter2")),
      "logged",
    );
  });

  test("a plain Error from onMessageData: 451 without its text, counted, nothing kept", async () => {
    const t = await inData({
      hooks: {
        onMessageData: () => {
          throw new Error("disk on fire");
        },
      },
    });
    const reply = await t.send("hi\r\n.\r\n");
    assert.equal(reply, LOCAL_ERROR);
    assert.equal(t.ctx.server.exceptions, 1);
    assert.equal(t.ctx.envelope.from, "", "the transaction is over");
    assert.equal(t.closed, false);
  });

  test("a rejected promise from onMessageData: 451", async () => {
    const t = await inData({ hooks: { onMessageData: () => Promise.reject(new Error("store failed")) } });
    assert.equal(await t.send("hi\r\n.\r\n"), LOCAL_ERROR);
    assert.equal(t.ctx.server.exceptions, 1);
  });

  test("SmtpError 421 from a hook replies 421 and closes", async () => {
    const t = await greeted({
      hooks: {
        onMailFrom: () => {
          throw SmtpError.code(421);
        },
      },
    });
    assert.equal(await t.send("MAIL FROM:<spammer@x.test>\r\nRCPT TO:<b@y.test>\r\n"), SERVICE_NOT_AVAILABLE);
    assert.equal(t.closed, true);
  });

  test("SmtpError 421 from onMessageDataReceiving closes in the middle of DATA", async () => {
    const t = await inData({
      hooks: {
        onMessageDataReceiving: () => {
          throw SmtpError.code(421);
        },
      },
    });
    assert.equal(await t.send("Subject: x\r\n\r\npart one\r\n"), SERVICE_NOT_AVAILABLE);
    assert.equal(t.closed, true);
    assert.equal(await t.send("more\r\n.\r\n"), "");
    assert.equal(t.messages.length, 0);
  });

  test("SmtpError 421 from onMessageData closes after the data", async () => {
    const t = await inData({
      hooks: {
        onMessageData: () => {
          throw new SmtpError(421, "mx.test Shutting down", "4.3.2");
        },
      },
    });
    assert.equal(await t.send("hi\r\n.\r\nNOOP\r\n"), "421 4.3.2 mx.test Shutting down\r\n");
    assert.equal(t.closed, true);
  });

  test("onMessageDataStart writing a Received header puts it first", async () => {
    const t = await inData({
      hooks: {
        onMessageDataStart: (ctx) => ctx.message.write("Received: from client.test by mx.test\r\n"),
      },
    });
    assert.equal(await t.send("Subject: x\r\n\r\nbody\r\n.\r\n"), ACCEPTED);
    assert.equal(
      t.messages[0]?.data.toString(),
      "Received: from client.test by mx.test\r\nSubject: x\r\n\r\nbody\r\n",
    );
  });

  test("onMessageDataStart refusing: its error before the 354, the transaction kept", async () => {
    const t = await greeted({
      hooks: {
        onMessageDataStart: () => {
          throw new SmtpError(451, "Try again later", "4.7.1");
        },
      },
    });
    assert.equal(
      await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"),
      `${MAIL_OK}${RCPT_OK}451 4.7.1 Try again later\r\n`,
    );
    assert.deepEqual(t.ctx.envelope.to, ["b@y.test"]);
    assert.equal(await t.send("RSET\r\n"), OK);
  });

  test("onMessageDataHeaders writing X-Test lands right before the empty line", async () => {
    let headersSeen = false;
    const t = await inData({
      hooks: {
        onMessageDataHeaders: (ctx) => {
          headersSeen = ctx.message.headers;
          ctx.message.write("X-Test: 1\r\n");
        },
      },
    });
    assert.equal(await t.send("Subject: x\r\nFrom: a@x.test\r\n\r\nbody\r\n\r\nmore\r\n.\r\n"), ACCEPTED);
    assert.equal(headersSeen, true);
    assert.equal(
      t.messages[0]?.data.toString(),
      "Subject: x\r\nFrom: a@x.test\r\nX-Test: 1\r\n\r\nbody\r\n\r\nmore\r\n",
    );
  });

  test("onMessageDataHeaders fires once even when the empty line arrives in its own write", async () => {
    let calls = 0;
    const t = await inData({
      hooks: {
        onMessageDataHeaders: (ctx) => {
          calls++;
          ctx.message.write("X-Test: 1\r\n");
        },
      },
    });
    assert.equal(await t.send("Subject: x\r\n", "\r", "\nbody\r\n", "\r\n", ".\r\n"), ACCEPTED);
    assert.equal(calls, 1);
    assert.equal(t.messages[0]?.data.toString(), "Subject: x\r\nX-Test: 1\r\n\r\nbody\r\n\r\n");
  });

  const sizeGuard = (limit: number): Partial<SessionHooks> => ({
    onMessageDataReceiving: (ctx: SessionContext) => {
      if (ctx.message.bytesize > limit) throw SmtpError.code(552);
    },
  });
  const QUOTA = "552 5.3.4 Requested mail action aborted: exceeded storage allocation\r\n";

  test("onMessageDataReceiving throwing 552 over a limit: 552 after the end of data", async () => {
    const t = await inData({ hooks: sizeGuard(100) });
    assert.equal(await t.send("Subject: x\r\n\r\n", "a".repeat(60), "b".repeat(60), "\r\nmore\r\n"), "");
    assert.equal(t.closed, false);
    assert.equal(await t.send(".\r\n"), QUOTA);
    assert.equal(t.messages.length, 0);
    await assertServes(t);
  });

  test("onMessageDataReceiving sees every byte, also those in the write that ends the data", async () => {
    const sizes: number[] = [];
    const t = await inData({
      hooks: {
        onMessageDataReceiving: (ctx) => {
          sizes.push(ctx.message.bytesize);
          if (ctx.message.bytesize > 100) throw SmtpError.code(552);
        },
      },
    });
    assert.equal(await t.send(`Subject: x\r\n\r\n${"c".repeat(200)}\r\n.\r\n`), QUOTA);
    assert.equal(t.messages.length, 0);
    assert.ok(sizes.length >= 1);
    assert.equal(
      await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"),
      MAIL_OK + RCPT_OK + GO_AHEAD,
    );
    assert.equal(await t.send(`${"d".repeat(90)}`, `${"e".repeat(20)}\r\n.\r\n`), QUOTA);
    assert.equal(t.messages.length, 0);
  });

  test("an async onMessageData: the 250 is not written before its promise resolves", async () => {
    const pending = deferred<string>();
    const t = await inData({ hooks: { onMessageData: () => pending.promise } });
    const before = t.written.length;
    t.session.receive(Buffer.from("Subject: x\r\n\r\nhi\r\n.\r\nNOOP\r\n"));
    await settle(10);
    assert.equal(t.written.length, before, "no reply while the hook runs");
    assert.equal(t.closed, false);
    pending.resolve("Queued as 42");
    await t.session.whenIdle();
    assert.equal(t.written.slice(before).join(""), `250 2.0.0 Queued as 42\r\n${OK}`);
    assert.equal(t.written.length, before + 1);
  });

  test("a string returned by onMessageData becomes the 250 text (CR/LF in it cannot split the reply)", async () => {
    const t = await inData({ hooks: { onMessageData: () => "Ok: queued as ABC123" } });
    assert.equal(await t.send("hi\r\n.\r\n"), "250 2.0.0 Ok: queued as ABC123\r\n");
    const evil = await inData({ hooks: { onMessageData: () => "queued\r\n250 fake" } });
    assert.equal(await evil.send("hi\r\n.\r\n"), "250 2.0.0 queued 250 fake\r\n");
  });

  test("onMessageStream receives the bytes as a stream; ctx.message.data stays empty", async () => {
    let streamed = Buffer.alloc(0);
    let dataAtEnd = -1;
    const line = `${"s".repeat(1022)}\r\n`;
    const body = line.repeat(300); // 300 KiB, more than messageChunkSize
    const t = await inData({
      config: { messageChunkSize: 16 * 1024 },
      hooks: {
        onMessageDataStart: (ctx) => ctx.message.write("Received: by mx.test\r\n"),
        onMessageStream: async (_ctx: SessionContext, stream: Readable) => {
          const chunks: Buffer[] = [];
          for await (const chunk of stream) {
            chunks.push(chunk as Buffer);
            await settle(1); // a slow consumer
          }
          streamed = Buffer.concat(chunks);
          return "Ok: streamed";
        },
        onMessageData: (ctx) => {
          dataAtEnd = ctx.message.data.length;
        },
      },
    });
    const chunks: string[] = [];
    for (let i = 0; i < body.length; i += 50_000) chunks.push(body.slice(i, i + 50_000));
    // The session is idle while it waits for the slow consumer to read: wait for the reply itself.
    const before = t.written.length;
    await t.send(...chunks, ".\r\n");
    assert.equal(await replyAfter(t, before), "250 2.0.0 Ok: streamed\r\n");
    assert.equal(streamed.toString("latin1"), `Received: by mx.test\r\n${body}`);
    assert.equal(dataAtEnd, 0);
    assert.equal(t.ctx.message.data.length, 0);
  });

  test("onMessageStream failing: 451 after the end of data, the session goes on", async () => {
    const t = await inData({
      hooks: {
        onMessageStream: async (_ctx: SessionContext, stream: Readable) => {
          await new Promise((resolve) => stream.once("readable", resolve));
          throw new Error("store full");
        },
      },
    });
    assert.equal(await t.send("Subject: x\r\n\r\nbody\r\n", "more\r\n.\r\n"), LOCAL_ERROR);
    assert.equal(t.ctx.server.exceptions, 1);
    assert.equal(t.closed, false);
  });
});

// ---- Configuration sanity for the tests above -----------------------------------------------------

test("the harness defaults these transcripts assume", () => {
  assert.equal(TEST_CONFIG.hostname, "mx.test");
  assert.equal(TEST_CONFIG.crlfMode, "ensure");
  assert.equal(TEST_CONFIG.maxMessageSize, 1024 * 1024);
  assert.equal(TEST_CONFIG.maxRecipients, 100);
  assert.equal(TEST_CONFIG.maxBadCommands, 20);
  assert.equal(TEST_CONFIG.maxCommandLineLength, 512);
  assert.equal(TEST_CONFIG.ioBufferMaxSize, 1024 * 1024);
});
