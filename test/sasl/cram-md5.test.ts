/** CRAM-MD5 (RFC 2195): our challenge, the client's "user SP hexdigest", and verifyPassword. */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, test } from "node:test";
import { inspect } from "node:util";
import { createExchange, type SaslExchange } from "../../src/sasl/mechanism.js";
import { assertNoSecret, b64, expectChallenge, expectCredentials, expectError, unb64 } from "./helpers.js";

const cram = () => createExchange("CRAM-MD5", { hostname: "mx.example.org" });

/** Starts an exchange and returns it with its decoded challenge. */
function begin(): { exchange: SaslExchange; challenge: string } {
  const exchange = cram();
  const challenge = unb64(expectChallenge(exchange.start(undefined)));
  return { exchange, challenge };
}

const digest = (password: string, challenge: string): string =>
  createHmac("md5", password).update(challenge).digest("hex");

describe("CRAM-MD5", () => {
  test("the challenge is <random.timestamp@hostname>, base64-encoded, new for every exchange", () => {
    const before = Date.now();
    const first = cram();
    const encoded = expectChallenge(first.start(undefined));
    assert.equal(Buffer.from(encoded, "base64").toString("base64"), encoded, "canonical base64");
    const match = /^<(\d+)\.(\d+)@mx\.example\.org>$/.exec(unb64(encoded));
    assert.ok(match, unb64(encoded));
    const timestamp = Number(match[2]);
    assert.ok(timestamp >= before && timestamp <= Date.now());
    const challenges = new Set(Array.from({ length: 50 }, () => begin().challenge));
    assert.equal(challenges.size, 50);
  });

  test("RFC 2195's example digest verifies against its challenge", () => {
    // RFC 2195 section 2: challenge <1896.697170952@postoffice.reston.mci.net>, password tanstaaftanstaaf.
    assert.equal(
      digest("tanstaaftanstaaf", "<1896.697170952@postoffice.reston.mci.net>"),
      "b913a602c7eda7a495b4e6e7334d3890",
    );
  });

  test("a digest computed with node:crypto verifies; a wrong password does not", () => {
    const { exchange, challenge } = begin();
    const hex = digest("tanstaaftanstaaf", challenge);
    const credentials = expectCredentials(exchange.next(b64(`tim ${hex}`)));
    assert.equal(credentials.mechanism, "CRAM-MD5");
    assert.equal(credentials.authorizationId, "");
    assert.equal(credentials.authenticationId, "tim");
    assert.equal(credentials.secret, hex);
    assert.equal(credentials.challenge, challenge);
    assert.equal(credentials.verifyPassword?.("tanstaaftanstaaf"), true);
    assert.equal(credentials.verifyPassword?.("tanstaaftanstaa"), false);
    assert.equal(credentials.verifyPassword?.(""), false);
  });

  test("a digest made for another challenge does not verify", () => {
    const { exchange } = begin();
    const hex = digest("tanstaaftanstaaf", "<1896.697170952@postoffice.reston.mci.net>");
    const credentials = expectCredentials(exchange.next(b64(`tim ${hex}`)));
    assert.equal(credentials.verifyPassword?.("tanstaaftanstaaf"), false);
  });

  test("UTF-8 user names (with spaces) and passwords", () => {
    const { exchange, challenge } = begin();
    const hex = digest("p\u00e4ss\u{1f511}", challenge);
    const credentials = expectCredentials(exchange.next(b64(`J\u00fcrgen M\u00fcller ${hex}`)));
    assert.equal(credentials.authenticationId, "J\u00fcrgen M\u00fcller");
    assert.equal(credentials.verifyPassword?.("p\u00e4ss\u{1f511}"), true);
    assert.equal(credentials.verifyPassword?.("pass\u{1f511}"), false);
  });

  test("upper-case hex is accepted and normalised to lower case", () => {
    const { exchange, challenge } = begin();
    const hex = digest("secret", challenge);
    const credentials = expectCredentials(exchange.next(b64(`tim ${hex.toUpperCase()}`)));
    assert.equal(credentials.secret, hex);
    assert.equal(credentials.verifyPassword?.("secret"), true);
  });

  test("the digest is redacted from util.inspect and JSON, the challenge is not", () => {
    const { exchange, challenge } = begin();
    const hex = digest("secret", challenge);
    const credentials = expectCredentials(exchange.next(b64(`tim ${hex}`)));
    assert.ok(!inspect(credentials).includes(hex));
    assert.ok(!JSON.stringify(credentials).includes(hex));
    assert.ok(JSON.stringify(credentials).includes(JSON.stringify(challenge)));
  });

  test("an initial response is refused: 501 5.7.0 (RFC 4954 section 6)", () => {
    expectError(cram().start(b64("tim b913a602c7eda7a495b4e6e7334d3890")), 501, "5.7.0");
    expectError(cram().start("="), 501, "5.7.0");
    expectError(cram().start("not base64!"), 501, "5.7.0");
  });

  test("a malformed response: 501 5.5.2", () => {
    const good = "b913a602c7eda7a495b4e6e7334d3890";
    for (const response of [
      good, // no user
      ` ${good}`, // empty user
      `tim ${good.slice(1)}`, // 31 digits
      `tim ${good}0`, // 33 digits
      `tim ${good.slice(1)}g`, // not hex
      `tim ${good} `, // trailing space
      `tim\t${good}`,
      "tim",
      "",
    ]) {
      const { exchange } = begin();
      expectError(exchange.next(b64(response)), 501, "5.5.2");
    }
  });

  test("CR, LF or NUL in the user name: 501 5.5.2", () => {
    for (const user of ["tim\r\nX: 1", "tim\n", "t\0im"]) {
      const { exchange, challenge } = begin();
      expectError(exchange.next(b64(`${user} ${digest("secret", challenge)}`)), 501, "5.5.2");
    }
  });

  test("invalid base64 and invalid UTF-8: 501 5.5.2", () => {
    const first = begin();
    assertNoSecret(
      expectError(first.exchange.next("tim b913a602c7eda7a495b4e6e7334d3890"), 501, "5.5.2"),
      "b913a6",
    );
    const second = begin();
    const invalid = Buffer.concat([
      Buffer.from([0xe2, 0x82]),
      Buffer.from(" b913a602c7eda7a495b4e6e7334d3890"),
    ]);
    expectError(second.exchange.next(invalid.toString("base64")), 501, "5.5.2");
  });

  test('"*" after the challenge cancels: 501 5.0.0', () => {
    const { exchange } = begin();
    expectError(exchange.next("*"), 501, "5.0.0");
  });
});
