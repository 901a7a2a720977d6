/**
 * The HELO/EHLO/LHLO argument (issue 16 item 8): by default one word of printable characters (no space,
 * no control character: it ends up in the Received header); with heloStrict, a domain or an address
 * literal as RFC 5321 4.1.1.1 says.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { SessionConfig } from "../../src/protocol/session.js";
import { openSession } from "../helpers/session-harness.js";

const EHLO_OK = /^250-mx\.test at your service\r\n/;
const HELO_OK = "250 mx.test at your service\r\n";
const NEED_HELO = "503 5.5.1 Error: send HELO/EHLO first\r\n";
const MAIL_OK = "250 2.1.0 Ok\r\n";
const SPACE = (verb: string) =>
  `501 5.5.4 Error: the ${verb} argument is one host name or address literal, without spaces\r\n`;
const CONTROL = (verb: string) => `501 5.5.4 Error: control character in the ${verb} argument\r\n`;
const INVALID = (verb: string) =>
  `501 5.5.4 Error: the ${verb} argument must be a domain name or an address literal (RFC 5321 4.1.1.1)\r\n`;

const STRICT: Partial<SessionConfig> = { heloStrict: true };

/** Sends `line`, expects `reply`, and checks the session is still not greeted (MAIL gets 503). */
async function refused(config: Partial<SessionConfig>, line: string, reply: string): Promise<void> {
  const t = await openSession({ config });
  assert.equal(await t.send(`${line}\r\n`), reply, JSON.stringify(line));
  assert.equal(t.ctx.server.helo, "");
  assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), NEED_HELO);
}

/** Sends `line`, expects the greeting, and returns the recorded helo. */
async function accepted(config: Partial<SessionConfig>, line: string): Promise<string> {
  const t = await openSession({ config });
  const reply = await t.send(`${line}\r\n`);
  if (line.startsWith("HELO")) assert.equal(reply, HELO_OK, JSON.stringify(line));
  else assert.match(reply, EHLO_OK, JSON.stringify(line));
  assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), MAIL_OK);
  return t.ctx.server.helo;
}

describe("the HELO/EHLO argument by default", () => {
  test("a space inside it is refused: the spoofing EHLO of issue 16 gets 501 and does not greet", async () => {
    await refused({}, "EHLO mail.bank.example (mail.bank.example [198.51.100.7])", SPACE("EHLO"));
    await refused({}, "HELO a b", SPACE("HELO"));
    await refused({}, "EHLO a  b", SPACE("EHLO"));
  });

  test("ESC, BS, DEL, TAB and the other control characters are refused", async () => {
    for (const byte of [0x1b, 0x08, 0x7f, 0x09, 0x01, 0x0b, 0x0c, 0x1f]) {
      const control = String.fromCharCode(byte);
      await refused({}, `EHLO evil${control}[2Jhost.test`, CONTROL("EHLO"));
      // A trailing tab (or VT, FF) is white space before the CRLF, which RFC 5321 4.1.1 tolerates on every
      // command (VT and FF as Postfix's tokenizer does).
      if (![0x09, 0x0b, 0x0c].includes(byte)) await refused({}, `HELO host.test${control}`, CONTROL("HELO"));
    }
  });

  test("NUL and a bare CR are still refused by the command decoder, before the EHLO check", async () => {
    await refused({}, "EHLO a\0b", "501 5.5.2 Syntax error: NUL or bare CR in command\r\n");
    await refused({}, "EHLO a\rb", "501 5.5.2 Syntax error: NUL or bare CR in command\r\n");
  });

  test("a non-ASCII argument is refused (RFC 6531 3.7.1: names in EHLO are A-labels)", async () => {
    const t = await openSession();
    assert.equal(
      await t.send(Buffer.from("EHLO b\u00fccher.example\r\n")),
      "501 5.5.4 Error: the EHLO argument must be ASCII (an internationalized name is sent as A-labels)\r\n",
    );
  });

  test("host names with underscores, address literals and other printable words are accepted", async () => {
    assert.equal(await accepted({}, "EHLO bad_host"), "bad_host");
    assert.equal(await accepted({}, "EHLO my_pc.corp.example"), "my_pc.corp.example");
    assert.equal(await accepted({}, "EHLO [192.0.2.1]"), "[192.0.2.1]");
    assert.equal(await accepted({}, "EHLO [IPv6:2001:db8::1]"), "[IPv6:2001:db8::1]");
    assert.equal(await accepted({}, "HELO localhost"), "localhost");
    // Not a domain, but one printable word: accepted; the Received header neutralises it.
    assert.equal(await accepted({}, "EHLO a(b)[c];d"), "a(b)[c];d");
  });

  test("spaces after the argument are not part of it", async () => {
    assert.equal(await accepted({}, "EHLO client.test   "), "client.test");
  });
});

describe("the HELO/EHLO argument with heloStrict", () => {
  test("a domain name is accepted, in any case, with or without dots", async () => {
    for (const name of [
      "mail.bank.example",
      "MX1.Example.COM",
      "localhost",
      "a",
      "x-1.e-x.test",
      "1.example",
    ]) {
      assert.equal(await accepted(STRICT, `EHLO ${name}`), name);
    }
    assert.equal(await accepted(STRICT, "HELO mail.bank.example"), "mail.bank.example");
  });

  test("address literals are accepted: [IPv4], [IPv6:...] (the tag in any case)", async () => {
    for (const literal of [
      "[198.51.100.7]",
      "[127.0.0.1]",
      "[IPv6:2001:db8::1]",
      "[ipv6:::1]",
      "[IPv6:::ffff:192.0.2.1]",
    ]) {
      assert.equal(await accepted(STRICT, `EHLO ${literal}`), literal);
    }
  });

  test("what is not a domain or an address literal gets 501 and does not greet", async () => {
    for (const name of [
      "bad_host",
      "my_pc.corp.example",
      "-lead.example",
      "trail-.example",
      "a..b",
      "trailing.dot.",
      ".leading.dot",
      "a(b)",
      "x;y",
      "user@host.example",
      '"quoted"',
      `${"a".repeat(64)}.example`, // a label of more than 63 octets
      `${"a.".repeat(127)}ab`, // 256 octets: more than a domain may have
      "192.0.2.1", // an address must be written as a literal (RFC 1123 2.1: no all-numeric top label)
      "[192.0.2.256]",
      "[192.0.2.1",
      "[IPv6:192.0.2.1]",
      "[2001:db8::1]", // IPv6 needs its tag
      "[IPv6:fe80::1%eth0]", // no zone index in an address literal
      "[x-tag:whatever]", // no General-address-literal tag is registered
      "[]",
    ]) {
      await refused(STRICT, `EHLO ${name}`, INVALID("EHLO"));
    }
    await refused(STRICT, "HELO bad_host", INVALID("HELO"));
  });

  test("strict mode refuses spaces and control characters with the same replies as the default", async () => {
    await refused(STRICT, "EHLO mail.bank.example (mail.bank.example [198.51.100.7])", SPACE("EHLO"));
    await refused(STRICT, "EHLO host\x1b.example", CONTROL("EHLO"));
  });

  test("a name of exactly 63-octet labels and 255 octets is accepted", async () => {
    const label = "a".repeat(63);
    const name = `${label}.${label}.${label}.${"b".repeat(63)}`;
    assert.equal(name.length, 255);
    assert.equal(await accepted(STRICT, `EHLO ${name}`), name);
  });

  test("LHLO is checked the same way in LMTP", async () => {
    await refused({ lmtp: true, heloStrict: true }, "LHLO bad_host", INVALID("LHLO"));
    await refused({ lmtp: true }, "LHLO a b", SPACE("LHLO"));
    const t = await openSession({ config: { lmtp: true, heloStrict: true } });
    assert.match(await t.send("LHLO [IPv6:::1]\r\n"), /^250-/);
  });
});
