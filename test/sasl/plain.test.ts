/** PLAIN (RFC 4616) driven the way RFC 4954 carries it: initial response, or "334 " then one line. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { inspect } from "node:util";
import { createExchange } from "../../src/sasl/mechanism.js";
import { assertNoSecret, b64, expectChallenge, expectCredentials, expectError } from "./helpers.js";

const plain = () => createExchange("PLAIN", { hostname: "mx.test" });

describe("PLAIN", () => {
  test("with an initial response", () => {
    const credentials = expectCredentials(plain().start(b64("\0alice\0s3cret")));
    assert.equal(credentials.mechanism, "PLAIN");
    assert.equal(credentials.authorizationId, "");
    assert.equal(credentials.authenticationId, "alice");
    assert.equal(credentials.secret, "s3cret");
    assert.equal(credentials.challenge, undefined);
  });

  test("without an initial response: an empty challenge, then the response", () => {
    const exchange = plain();
    expectChallenge(exchange.start(undefined), "");
    const credentials = expectCredentials(exchange.next(b64("\0alice\0s3cret")));
    assert.equal(credentials.authenticationId, "alice");
    assert.equal(credentials.secret, "s3cret");
  });

  test("with an authorization identity", () => {
    const credentials = expectCredentials(plain().start(b64("admin@example.org\0alice\0s3cret")));
    assert.equal(credentials.authorizationId, "admin@example.org");
    assert.equal(credentials.authenticationId, "alice");
    assert.equal(credentials.secret, "s3cret");
  });

  test("UTF-8 identities and passwords", () => {
    const exchange = plain();
    expectChallenge(exchange.start(undefined), "");
    const credentials = expectCredentials(
      exchange.next(b64("j\u00fcrgen\0\u00e9l\u00e8ve@\u00e9cole.fr\0p\u00e4ss\u{1f511}")),
    );
    assert.equal(credentials.authorizationId, "j\u00fcrgen");
    assert.equal(credentials.authenticationId, "\u00e9l\u00e8ve@\u00e9cole.fr");
    assert.equal(credentials.secret, "p\u00e4ss\u{1f511}");
  });

  test("a password may hold spaces, CR and LF (RFC 4616: any UTF-8 but NUL)", () => {
    const credentials = expectCredentials(plain().start(b64("\0alice\0pass word\r\n")));
    assert.equal(credentials.secret, "pass word\r\n");
  });

  test("verifyPassword compares the password", () => {
    const credentials = expectCredentials(plain().start(b64("\0alice\0s3cret")));
    assert.equal(credentials.verifyPassword?.("s3cret"), true);
    assert.equal(credentials.verifyPassword?.("s3cre"), false);
    assert.equal(credentials.verifyPassword?.("s3cret "), false);
    assert.equal(credentials.verifyPassword?.(""), false);
  });

  test("the password is redacted from util.inspect and JSON", () => {
    const credentials = expectCredentials(plain().start(b64("\0alice\0s3cret")));
    assert.ok(!inspect(credentials).includes("s3cret"));
    assert.ok(inspect(credentials).includes("alice"));
    assert.ok(!JSON.stringify(credentials).includes("s3cret"));
    assert.ok(!JSON.stringify({ credentials }).includes("s3cret"));
  });

  test("not exactly three parts: 501 5.5.2", () => {
    for (const message of [
      "alice\0s3cret",
      "alices3cret",
      "",
      "\0\0alice\0s3cret",
      "a\0alice\0s3\0cret",
      "\0alice\0s3cret\0",
    ]) {
      assertNoSecret(expectError(plain().start(b64(message)), 501, "5.5.2"), "alice", "s3cret", "s3");
    }
  });

  test('an empty initial response ("=") is not a PLAIN message: 501 5.5.2', () => {
    expectError(plain().start("="), 501, "5.5.2");
  });

  test("an empty line after the challenge: 501 5.5.2", () => {
    const exchange = plain();
    expectChallenge(exchange.start(undefined), "");
    expectError(exchange.next(""), 501, "5.5.2");
  });

  test("empty authcid or password: 501 5.5.2", () => {
    assertNoSecret(expectError(plain().start(b64("\0\0s3cret")), 501, "5.5.2"), "s3cret");
    assertNoSecret(expectError(plain().start(b64("\0alice\0")), 501, "5.5.2"), "alice");
    expectError(plain().start(b64("admin\0\0s3cret")), 501, "5.5.2");
  });

  test("CR or LF smuggled through the authzid or authcid: 501 5.5.2", () => {
    for (const message of [
      "admin\r\nX-Injected: 1\0alice\0s3cret",
      "admin\r\0alice\0s3cret",
      "admin\n\0alice\0s3cret",
      "\0alice\r\nRCPT TO:<x@y.test>\0s3cret",
      "\0alice\n\0s3cret",
      "\0\ralice\0s3cret",
    ]) {
      assertNoSecret(expectError(plain().start(b64(message)), 501, "5.5.2"), "alice", "s3cret", "admin");
      const exchange = plain();
      expectChallenge(exchange.start(undefined), "");
      expectError(exchange.next(b64(message)), 501, "5.5.2");
    }
  });

  test("invalid UTF-8: 501 5.5.2", () => {
    const invalid = Buffer.concat([
      Buffer.from("\0al"),
      Buffer.from([0xc3, 0x28]),
      Buffer.from("ice\0s3cret"),
    ]);
    expectError(plain().start(invalid.toString("base64")), 501, "5.5.2");
    const overlong = Buffer.concat([Buffer.from("\0alice\0"), Buffer.from([0xc0, 0x80])]);
    const exchange = plain();
    expectChallenge(exchange.start(undefined), "");
    expectError(exchange.next(overlong.toString("base64")), 501, "5.5.2");
  });

  test("invalid base64: 501 5.5.2, never leniently decoded", () => {
    const valid = b64("\0alice\0s3cret");
    for (const response of [valid.slice(0, -1), `${valid} `, valid.replace("=", ""), `${valid}\r`, "*"]) {
      assertNoSecret(expectError(plain().start(response), 501, "5.5.2"), response);
    }
    const exchange = plain();
    expectChallenge(exchange.start(undefined), "");
    expectError(exchange.next(valid.replaceAll("A", "-")), 501, "5.5.2");
  });

  test('"*" after the challenge cancels: 501 5.0.0', () => {
    const exchange = plain();
    expectChallenge(exchange.start(undefined), "");
    assert.equal(
      expectError(exchange.next("*"), 501, "5.0.0").render(),
      "501 5.0.0 Authentication cancelled\r\n",
    );
  });
});
