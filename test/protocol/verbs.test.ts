/**
 * What the session does by verb: the command groups of RFC 2920 (nothing may follow them unanswered), the
 * verbs it does not offer (502), web clients (421), the AUTH line's longer limit, the 521 for a DATA or
 * BDAT line that cannot be read, and which verbs a hook failure answers 451 rather than 500.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SmtpError } from "../../src/protocol/errors.js";
import { commandLineLimit, KNOWN_VERBS, undecodableLineError } from "../../src/protocol/verbs.js";
import { MAX_SASL_LINE_OCTETS } from "../../src/sasl/mechanism.js";
import { openSession } from "../helpers/session-harness.js";

const SYNC = "554 5.5.0 Error: SMTP protocol synchronization\r\n";

describe("RFC 2920 3.1: a command that ends a group, followed by more input, ends the session", () => {
  for (const line of ["EHLO b.example", "HELO b.example", "DATA", "VRFY a", "EXPN a", "NOOP", "TURN"]) {
    test(line, async () => {
      const t = await openSession({ hooks: { onVrfy: () => "a@b.example", onExpn: () => ["a@b.example"] } });
      if (line !== "EHLO b.example" && line !== "HELO b.example") {
        await t.send("EHLO a.example\r\n");
        if (line === "DATA") await t.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
      }
      assert.equal(await t.send(`${line}\r\nRSET\r\n`), SYNC);
      assert.equal(t.closed, true);
    });
  }
  test("LHLO in LMTP", async () => {
    const t = await openSession({ config: { lmtp: true } });
    assert.equal(await t.send("LHLO b.example\r\nRSET\r\n"), SYNC);
    assert.equal(t.closed, true);
  });
  test("MAIL, RCPT and RSET may be followed by more", async () => {
    const t = await openSession();
    await t.send("EHLO a.example\r\n");
    assert.equal(
      await t.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRSET\r\nQUIT\r\n"),
      "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n221 2.0.0 mx.test Service closing transmission channel\r\n",
    );
  });
});

describe("verbs mailgate knows but does not offer get 502; web clients get 421 and a close", () => {
  for (const verb of ["TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML"]) {
    test(verb, async () => {
      const t = await openSession();
      await t.send("EHLO a.example\r\n");
      assert.equal(await t.send(`${verb} x\r\n`), "502 5.5.1 Command not implemented\r\n");
      assert.equal(t.closed, false);
    });
  }
  test("an unknown verb is 500", async () => {
    const t = await openSession();
    assert.equal(await t.send("FOO\r\n"), "500 5.5.2 Syntax error, command unrecognised\r\n");
  });
  for (const verb of ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH"]) {
    test(verb, async () => {
      const t = await openSession();
      assert.equal(
        await t.send(`${verb} / HTTP/1.1\r\n`),
        "421 4.7.0 mx.test Error: this is an SMTP server\r\n",
      );
      assert.equal(t.closed, true);
    });
  }
});

describe("commandLineLimit", () => {
  const limit = (text: string, authOffered = true, start = 0) =>
    commandLineLimit(Buffer.from(text, "latin1"), start, 512, authOffered);
  test("an AUTH line (any case, then a space) may be as long as a SASL response, when AUTH is offered", () => {
    assert.equal(limit("AUTH PLAIN x"), MAX_SASL_LINE_OCTETS + 2);
    assert.equal(limit("auth "), MAX_SASL_LINE_OCTETS + 2);
    assert.equal(limit("aUtH x"), MAX_SASL_LINE_OCTETS + 2);
    assert.equal(limit("xxAUTH x", true, 2), MAX_SASL_LINE_OCTETS + 2, "from the line's start");
    assert.equal(commandLineLimit(Buffer.from("AUTH x"), 0, 20_000, true), 20_000, "never below max");
  });
  test("every other line, or AUTH while it is not offered, has the command limit", () => {
    for (const text of [
      "AUTH",
      "AUTHX",
      "AUTH\t",
      "AUTO x",
      "BUTH x",
      "AITH x",
      "AUSH x",
      "AUTX x",
      "MAIL FROM:<a@b>",
      "xAUTH x",
    ]) {
      assert.equal(limit(text), 512, text);
    }
    assert.equal(limit("AUTH PLAIN x", false), 512);
    assert.equal(limit("AUTH x", true, 1), 512);
  });
});

describe("undecodableLineError", () => {
  const error = new SmtpError(501, "Syntax error: NUL or bare CR in command", "5.5.2");
  const judge = (text: string, end = text.length) =>
    undecodableLineError(Buffer.from(text, "latin1"), 0, end, error);
  test("a DATA or BDAT line that cannot be read ends the session with 521", () => {
    for (const text of ["BDAT 5\0", "bdat\r5 LAST", " \t\v\f\rBDAT 1", "BDAT"]) {
      const reply = judge(text);
      assert.ok(reply instanceof SmtpError, text);
      assert.equal(reply.render(), "521 5.5.4 Syntax: BDAT size [LAST]\r\n", JSON.stringify(text));
    }
    for (const text of ["DATA \0", "data\r", "\r\tDATA", "Data"]) {
      const reply = judge(text);
      assert.ok(reply instanceof SmtpError, text);
      assert.equal(
        reply.render(),
        "521 5.5.4 Syntax error: unreadable DATA command\r\n",
        JSON.stringify(text),
      );
    }
  });
  test("any other line keeps the decoder's error", () => {
    for (const text of ["NOOP\0", "BDATX 5\0", "DAT\0", "xDATA\0", "MAIL\r", ""]) {
      assert.equal(judge(text), error, JSON.stringify(text));
    }
    assert.equal((judge("DATAX", 4) as SmtpError).code, 521, "the line ends where the caller says");
    assert.equal(judge("DATA\0"), error, "DATA followed by a NUL is not the word DATA");
    assert.equal(judge("BDATX", 5), error);
  });
});

test("the verbs the session handles itself (metrics label them; a hook failure on them is 451)", () => {
  assert.deepEqual([...KNOWN_VERBS].sort(), [
    "AUTH",
    "BDAT",
    "DATA",
    "EHLO",
    "EXPN",
    "HELO",
    "HELP",
    "LHLO",
    "MAIL",
    "NOOP",
    "QUIT",
    "RCPT",
    "RSET",
    "STARTTLS",
    "VRFY",
    "XCLIENT",
    "XFORWARD",
  ]);
});
