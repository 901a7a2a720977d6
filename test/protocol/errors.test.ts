/**
 * SmtpError, the reply as a value, and the two ways a hook may ask for a reply without one: smtp-server's
 * `responseCode` on an Error, and aiosmtpd's whole reply as a string.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { adoptResponseCode, replyFromHookText, SmtpError } from "../../src/protocol/errors.js";

test("an SmtpError carries a 4xx or 5xx code; anything else is a programming error", () => {
  for (const code of [400, 451, 599]) assert.equal(new SmtpError(code).code, code);
  for (const code of [399, 600, 250, 450.5, Number.NaN]) {
    assert.throws(
      () => new SmtpError(code),
      (error: unknown) =>
        error instanceof RangeError &&
        error.message === `SmtpError code must be an integer from 400 to 599, got ${code}.`,
    );
  }
});

test("text and enhanced code default to the standard reply, else to 'Error' and the code's class", () => {
  const standard = new SmtpError(550);
  assert.equal(standard.replyText, "Requested action not taken: mailbox unavailable");
  assert.equal(standard.enhancedCode, "5.1.1");
  assert.equal(standard.message, "550 5.1.1 Requested action not taken: mailbox unavailable");
  assert.equal(standard.name, "SmtpError");
  assert.ok(standard instanceof Error);
  const unknown = new SmtpError(599);
  assert.equal(unknown.replyText, "Error");
  assert.equal(unknown.enhancedCode, "5.0.0");
  assert.equal(new SmtpError(499).enhancedCode, "4.0.0");
  assert.equal(unknown.render(), "599 5.0.0 Error\r\n");
  const own = new SmtpError(451, "Try later", "4.3.2", "the store is down");
  assert.equal(own.message, "the store is down", "the log message, never sent");
  assert.equal(own.render(), "451 4.3.2 Try later\r\n");
  assert.equal(own.render(false), "451 Try later\r\n", "without ENHANCEDSTATUSCODES");
  const lines = new SmtpError(550, ["first", "second"], "5.7.1");
  assert.equal(lines.message, "550 5.7.1 first / second");
  assert.equal(lines.render(), "550-5.7.1 first\r\n550 5.7.1 second\r\n");
});

test("SmtpError.code(): the standard reply, with an optional log message", () => {
  const error = SmtpError.code(421, "shutting down for maintenance");
  assert.equal(error.render(), "421 4.3.2 Service not available, closing transmission channel\r\n");
  assert.equal(error.message, "shutting down for maintenance");
  assert.equal(SmtpError.code(535).message, "535 5.7.8 Authentication credentials invalid");
});

test("421 and 521 close the connection; no other reply does", () => {
  assert.equal(new SmtpError(421).closesConnection, true);
  assert.equal(new SmtpError(521).closesConnection, true);
  for (const code of [420, 422, 450, 451, 500, 520, 522, 550, 554]) {
    assert.equal(new SmtpError(code).closesConnection, false, String(code));
  }
});

test("adoptResponseCode: an Error with a 4xx/5xx responseCode becomes that standard reply, its message only logged", () => {
  const error = Object.assign(new TypeError("db password wrong at 10.0.0.5"), { responseCode: 452 });
  const adopted = adoptResponseCode(error);
  assert.ok(adopted instanceof SmtpError);
  assert.equal(adopted.render(), "452 4.3.1 Requested action not taken: insufficient system storage\r\n");
  assert.equal(
    adopted.message,
    "452 asked by a hook's TypeError (responseCode): db password wrong at 10.0.0.5",
  );
  for (const code of [400, 599])
    assert.equal(
      (adoptResponseCode(Object.assign(new Error("x"), { responseCode: code })) as SmtpError).code,
      code,
    );
});

test("adoptResponseCode leaves anything else as it is", () => {
  const smtp = new SmtpError(550);
  assert.equal(adoptResponseCode(smtp), smtp);
  const plain = { responseCode: 550 };
  assert.equal(adoptResponseCode(plain), plain, "not an Error");
  assert.equal(adoptResponseCode("550"), "550");
  assert.equal(adoptResponseCode(undefined), undefined);
  for (const responseCode of [250, 399, 600, 450.5, "550", null]) {
    const error = Object.assign(new Error("x"), { responseCode });
    assert.equal(adoptResponseCode(error), error, String(responseCode));
  }
  const none = new Error("no code");
  assert.equal(adoptResponseCode(none), none);
});

test("replyFromHookText: a whole 4xx/5xx reply is that refusal, with or without its enhanced code", () => {
  const refusal = (text: string) => {
    const reply = replyFromHookText(text);
    assert.ok(reply instanceof SmtpError, text);
    return reply.render();
  };
  assert.equal(refusal("550 5.7.1 Refused as spam"), "550 5.7.1 Refused as spam\r\n");
  assert.equal(refusal("452 Mailbox full"), "452 4.3.1 Mailbox full\r\n");
  assert.equal(refusal("554"), "554 5.0.0 Transaction failed\r\n");
  assert.equal(refusal("554 "), "554 5.0.0 Transaction failed\r\n", "an empty text is the standard one");
  assert.equal(refusal("451 4.123.456 Try again"), "451 4.123.456 Try again\r\n");
  assert.equal(
    refusal("550 5.7.1 multi\nline"),
    "550 5.7.1 multi line\r\n",
    "the text may hold a line break",
  );
  assert.equal(refusal("400 Odd"), "400 4.0.0 Odd\r\n");
  // A text that only looks like an enhanced code stays text.
  assert.equal(refusal("550 5.1234.1 Text"), "550 5.1.1 5.1234.1 Text\r\n");
  assert.equal(refusal("550 3.1.1 Text"), "550 5.1.1 3.1.1 Text\r\n");
  assert.equal(refusal("550 5..1 Text"), "550 5.1.1 5..1 Text\r\n");
});

test("replyFromHookText: a 2xx reply gives its text to the 250; anything else is text as it is", () => {
  assert.equal(replyFromHookText("250 Message accepted"), "Message accepted");
  assert.equal(replyFromHookText("250 2.0.0 Queued as X"), "Queued as X");
  assert.equal(replyFromHookText("250"), "Ok");
  assert.equal(replyFromHookText("250 "), "Ok");
  for (const text of [
    "Queued as 42",
    "2500 items",
    "250x",
    "350 Go ahead",
    "150 x",
    "25",
    " 250 x",
    "650 x",
    "2a0 x",
    "25a x",
  ]) {
    assert.equal(replyFromHookText(text), text, text);
  }
});
