/**
 * How a message ends and the replies it makes: what a data hook threw or returned, read as a refusal, a
 * 250 text or per-recipient outcomes; one reply in SMTP, one per recipient in LMTP (RFC 2033 4.2).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SmtpError } from "../../src/protocol/errors.js";
import { messageAnswers, messageResult } from "../../src/protocol/message-outcome.js";

describe("messageResult", () => {
  test("a thrown value refuses, whatever the hook returned; null and undefined are not thrown values", () => {
    const error = new SmtpError(550);
    assert.deepEqual(messageResult(error, "ignored"), { kind: "refused", error });
    assert.deepEqual(messageResult("a string thrown", undefined), {
      kind: "refused",
      error: "a string thrown",
    });
    assert.deepEqual(messageResult(0, undefined), { kind: "refused", error: 0 });
    assert.deepEqual(messageResult(null, undefined), { kind: "accepted", text: undefined });
    assert.deepEqual(messageResult(undefined, undefined), { kind: "accepted", text: undefined });
  });

  test("a returned string is the 250's text, an array the per-recipient outcomes, anything else a plain 250", () => {
    assert.deepEqual(messageResult(null, "queued as 7"), { kind: "accepted", text: "queued as 7" });
    assert.deepEqual(messageResult(null, ""), { kind: "accepted", text: "" });
    const outcomes = ["ok", new SmtpError(452)];
    assert.deepEqual(messageResult(null, outcomes), { kind: "perRecipient", outcomes });
    for (const value of [42, { id: 1 }, true, undefined]) {
      assert.deepEqual(messageResult(null, value), { kind: "accepted", text: undefined }, String(value));
    }
  });
});

describe("messageAnswers in SMTP: one reply", () => {
  const smtp = (error: unknown, value: unknown) =>
    messageAnswers(messageResult(error, value), ["a@x", "b@x"], false);
  test("accepted: the hook's text, or 'Ok: message accepted'; a whole 2xx reply gives its text", () => {
    assert.deepEqual(smtp(null, undefined), [{ refused: false, text: "Ok: message accepted" }]);
    assert.deepEqual(smtp(null, "queued as 7"), [{ refused: false, text: "queued as 7" }]);
    assert.deepEqual(smtp(null, "250 2.0.0 Stored"), [{ refused: false, text: "Stored" }]);
  });
  test("refused: the error as it is; a returned whole 4xx/5xx reply refuses too", () => {
    const error = new Error("disk full");
    assert.deepEqual(smtp(error, undefined), [{ refused: true, error }]);
    const [answer] = smtp(null, "452 4.3.1 Mailbox full");
    assert.ok(answer?.refused && answer.error instanceof SmtpError);
    assert.equal(answer.error.render(), "452 4.3.1 Mailbox full\r\n");
  });
  test("per-recipient outcomes: the first Error among them refuses the whole message, else one 250", () => {
    const refusal = new SmtpError(452);
    assert.deepEqual(smtp(null, ["ok", refusal, new SmtpError(550)]), [{ refused: true, error: refusal }]);
    assert.deepEqual(smtp(null, ["ok", "fine"]), [{ refused: false, text: "Ok: message accepted" }]);
  });
});

describe("messageAnswers in LMTP: one reply per recipient, in RCPT order", () => {
  const lmtp = (error: unknown, value: unknown) =>
    messageAnswers(messageResult(error, value), ["a@x", "b@x"], true);
  test("accepted: each recipient's '<address> Ok', or the hook's text for all", () => {
    assert.deepEqual(lmtp(null, undefined), [
      { refused: false, text: "<a@x> Ok" },
      { refused: false, text: "<b@x> Ok" },
    ]);
    assert.deepEqual(lmtp(null, "delivered"), [
      { refused: false, text: "delivered" },
      { refused: false, text: "delivered" },
    ]);
  });
  test("refused: the same refusal for every recipient", () => {
    const error = new SmtpError(451);
    assert.deepEqual(lmtp(error, undefined), [
      { refused: true, error },
      { refused: true, error },
    ]);
  });
  test("per recipient: an Error or any other non-text value refuses that one; a text or nothing accepts it", () => {
    const full = new SmtpError(452);
    const odd = { not: "text" };
    const answers = messageAnswers(
      messageResult(null, [full, "kept", undefined, odd, null]),
      ["a", "b", "c", "d", "e"],
      true,
    );
    assert.deepEqual(answers, [
      { refused: true, error: full },
      { refused: false, text: "kept" },
      { refused: false, text: "<c> Ok" },
      { refused: true, error: odd },
      { refused: false, text: "<e> Ok" },
    ]);
    const [whole] = messageAnswers(messageResult(null, ["550 5.1.1 No such user"]), ["a"], true);
    assert.ok(whole?.refused && whole.error instanceof SmtpError && whole.error.code === 550);
  });
  test("fewer outcomes than recipients: the others are accepted", () => {
    assert.deepEqual(messageAnswers(messageResult(null, ["first"]), ["a", "b"], true), [
      { refused: false, text: "first" },
      { refused: false, text: "<b> Ok" },
    ]);
  });
});
