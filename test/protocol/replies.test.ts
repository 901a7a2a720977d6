/**
 * Rendering replies (RFC 5321 4.2, RFC 2034): the standard replies of the seed's exception classes with
 * their enhanced codes (RFC 3463), multi-line replies, and reply texts that cannot split a reply.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SmtpError } from "../../src/protocol/errors.js";
import { formatReply, replyCode } from "../../src/protocol/replies.js";

test("each standard code renders the seed's reply, with its RFC 3463 enhanced code", () => {
  const expected: Record<number, string> = {
    421: "421 4.3.2 Service not available, closing transmission channel",
    450: "450 4.2.0 Requested mail action not taken: mailbox unavailable",
    451: "451 4.3.0 Requested action aborted: local error in processing",
    452: "452 4.3.1 Requested action not taken: insufficient system storage",
    454: "454 4.7.0 Temporary authentication failure",
    500: "500 5.5.2 Syntax error, command unrecognised",
    501: "501 5.5.4 Syntax error in parameters or arguments",
    502: "502 5.5.1 Command not implemented",
    503: "503 5.5.1 Bad sequence of commands",
    504: "504 5.5.4 Command parameter not implemented",
    521: "521 5.3.2 Service does not accept mail",
    530: "530 5.7.0 Authentication required",
    534: "534 5.7.9 Authentication mechanism is too weak",
    535: "535 5.7.8 Authentication credentials invalid",
    538: "538 5.7.11 Encryption required for requested authentication mechanism",
    550: "550 5.1.1 Requested action not taken: mailbox unavailable",
    551: "551 5.1.6 User not local; please try <forward-path>",
    552: "552 5.3.4 Requested mail action aborted: exceeded storage allocation",
    553: "553 5.1.3 Requested action not taken: mailbox name not allowed",
    554: "554 5.0.0 Transaction failed",
    555: "555 5.5.4 MAIL FROM/RCPT TO parameters not recognised or not implemented",
  };
  for (const [code, reply] of Object.entries(expected)) {
    assert.equal(SmtpError.code(Number(code)).render(), `${reply}\r\n`);
  }
});

test("one line: code, enhanced code, text, CRLF; without an enhanced code, code and text", () => {
  assert.equal(formatReply(250, "2.0.0", "Ok"), "250 2.0.0 Ok\r\n");
  assert.equal(formatReply(220, undefined, "mx.test ESMTP"), "220 mx.test ESMTP\r\n");
  assert.equal(formatReply(354, "", "Go ahead"), "354 Go ahead\r\n");
});

test('multi-line: "code-" on every line but the last, the enhanced code on each (RFC 2034 4)', () => {
  assert.equal(
    formatReply(250, undefined, ["mx.test", "PIPELINING", "HELP"]),
    "250-mx.test\r\n250-PIPELINING\r\n250 HELP\r\n",
  );
  assert.equal(formatReply(214, "2.0.0", ["a", "b"]), "214-2.0.0 a\r\n214 2.0.0 b\r\n");
  assert.equal(formatReply(250, "2.1.5", ["only"]), "250 2.1.5 only\r\n");
});

test("CR, LF and NUL in a reply text become one space: a hook's text cannot split a reply", () => {
  assert.equal(formatReply(550, "5.7.1", "no\r\n250 ok\0x"), "550 5.7.1 no 250 ok x\r\n");
  assert.equal(formatReply(250, undefined, ["a\r\nb", "c\nd"]), "250-a b\r\n250 c d\r\n");
});

test("replyCode reads the first three digits", () => {
  for (const code of [211, 250, 354, 421, 550, 599]) {
    assert.equal(replyCode(formatReply(code, undefined, "x")), code);
  }
});
