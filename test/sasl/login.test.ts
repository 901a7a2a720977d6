/** LOGIN (draft-murchison-sasl-login): "Username:" and "Password:" challenges; the seed's variants. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createExchange } from "../../src/sasl/mechanism.js";
import { assertNoSecret, b64, expectChallenge, expectCredentials, expectError, unb64 } from "./helpers.js";

const USERNAME = "VXNlcm5hbWU6";
const PASSWORD = "UGFzc3dvcmQ6";
const login = () => createExchange("LOGIN", { hostname: "mx.test" });

describe("LOGIN", () => {
  test("the challenges are base64 of Username: and Password:", () => {
    assert.equal(unb64(USERNAME), "Username:");
    assert.equal(unb64(PASSWORD), "Password:");
  });

  test("without an initial response: Username:, then Password:, then the credentials", () => {
    const exchange = login();
    expectChallenge(exchange.start(undefined), USERNAME);
    expectChallenge(exchange.next(b64("alice")), PASSWORD);
    const credentials = expectCredentials(exchange.next(b64("s3cret")));
    assert.equal(credentials.mechanism, "LOGIN");
    assert.equal(credentials.authorizationId, "");
    assert.equal(credentials.authenticationId, "alice");
    assert.equal(credentials.secret, "s3cret");
    assert.equal(credentials.verifyPassword?.("s3cret"), true);
    assert.equal(credentials.verifyPassword?.("S3cret"), false);
  });

  test("with the user name as initial response (AUTH LOGIN <b64 user>, as the seed): Password:", () => {
    const exchange = login();
    expectChallenge(exchange.start(b64("alice")), PASSWORD);
    const credentials = expectCredentials(exchange.next(b64("s3cret")));
    assert.equal(credentials.authenticationId, "alice");
    assert.equal(credentials.secret, "s3cret");
  });

  test("UTF-8 user names and passwords", () => {
    const exchange = login();
    expectChallenge(exchange.start(undefined), USERNAME);
    expectChallenge(exchange.next(b64("\u00e9l\u00e8ve@\u00e9cole.fr")), PASSWORD);
    const credentials = expectCredentials(exchange.next(b64("m\u00f6t de passe \u{1f511}")));
    assert.equal(credentials.authenticationId, "\u00e9l\u00e8ve@\u00e9cole.fr");
    assert.equal(credentials.secret, "m\u00f6t de passe \u{1f511}");
    assert.equal(credentials.verifyPassword?.("m\u00f6t de passe \u{1f511}"), true);
  });

  test('"*" cancels at the Username: step and at the Password: step: 501 5.0.0', () => {
    const first = login();
    expectChallenge(first.start(undefined), USERNAME);
    expectError(first.next("*"), 501, "5.0.0");

    const second = login();
    expectChallenge(second.start(undefined), USERNAME);
    expectChallenge(second.next(b64("alice")), PASSWORD);
    expectError(second.next("*"), 501, "5.0.0");

    const third = login();
    expectChallenge(third.start(b64("alice")), PASSWORD);
    expectError(third.next("*"), 501, "5.0.0");
  });

  test("invalid base64 at every step: 501 5.5.2", () => {
    expectError(login().start("YWxpY2U"), 501, "5.5.2");
    const first = login();
    expectChallenge(first.start(undefined), USERNAME);
    expectError(first.next("alice"), 501, "5.5.2");
    const second = login();
    expectChallenge(second.start(undefined), USERNAME);
    expectChallenge(second.next(b64("alice")), PASSWORD);
    assertNoSecret(expectError(second.next("s3cret!"), 501, "5.5.2"), "s3cret");
  });

  test('an empty user name (initial "=" or empty line) or password: 501 5.5.2', () => {
    expectError(login().start("="), 501, "5.5.2");
    const first = login();
    expectChallenge(first.start(undefined), USERNAME);
    expectError(first.next(""), 501, "5.5.2");
    const second = login();
    expectChallenge(second.start(b64("alice")), PASSWORD);
    expectError(second.next(""), 501, "5.5.2");
  });

  test("CR, LF or NUL in the user name, NUL in the password: 501 5.5.2", () => {
    for (const user of ["alice\r\nX: 1", "alice\r", "\nalice", "al\0ice"]) {
      expectError(login().start(b64(user)), 501, "5.5.2");
      const exchange = login();
      expectChallenge(exchange.start(undefined), USERNAME);
      expectError(exchange.next(b64(user)), 501, "5.5.2");
    }
    const exchange = login();
    expectChallenge(exchange.start(b64("alice")), PASSWORD);
    assertNoSecret(expectError(exchange.next(b64("s3\0cret")), 501, "5.5.2"), "s3", "cret");
  });

  test("invalid UTF-8 at either step: 501 5.5.2", () => {
    const bad = Buffer.from([0x61, 0xff, 0x62]).toString("base64");
    expectError(login().start(bad), 501, "5.5.2");
    const exchange = login();
    expectChallenge(exchange.start(b64("alice")), PASSWORD);
    expectError(exchange.next(bad), 501, "5.5.2");
  });
});
