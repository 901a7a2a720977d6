/** Google's XOAUTH2: base64("user=" user ^A "auth=Bearer " token ^A ^A), initial or after "334 ". */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { inspect } from "node:util";
import { createExchange } from "../../src/sasl/mechanism.js";
import { assertNoSecret, b64, expectChallenge, expectCredentials, expectError } from "./helpers.js";

const xoauth2 = () => createExchange("XOAUTH2", { hostname: "mx.test" });
const TOKEN = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg";
const message = (user: string, token: string): string => `user=${user}\x01auth=Bearer ${token}\x01\x01`;

describe("XOAUTH2", () => {
  test("with an initial response (Google's example)", () => {
    const response =
      "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52" +
      "YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==";
    const credentials = expectCredentials(xoauth2().start(response));
    assert.equal(credentials.mechanism, "XOAUTH2");
    assert.equal(credentials.authorizationId, "");
    assert.equal(credentials.authenticationId, "someuser@example.com");
    assert.equal(credentials.secret, TOKEN);
    assert.equal(credentials.verifyPassword, undefined);
  });

  test("with curl's initial response", () => {
    const credentials = expectCredentials(
      xoauth2().start("dXNlcj11c2VyAWF1dGg9QmVhcmVyIG1GXzkuQjVmLTQuMUpxTQEB"),
    );
    assert.equal(credentials.authenticationId, "user");
    assert.equal(credentials.secret, "mF_9.B5f-4.1JqM");
  });

  test("after an empty challenge", () => {
    const exchange = xoauth2();
    expectChallenge(exchange.start(undefined), "");
    const credentials = expectCredentials(exchange.next(b64(message("alice@example.org", TOKEN))));
    assert.equal(credentials.authenticationId, "alice@example.org");
    assert.equal(credentials.secret, TOKEN);
  });

  test("UTF-8 user names; the scheme name is case-insensitive; the fields may come in either order", () => {
    const utf8 = expectCredentials(
      xoauth2().start(b64(message("\u00e9l\u00e8ve@\u00e9cole.fr", "t0k+/en=="))),
    );
    assert.equal(utf8.authenticationId, "\u00e9l\u00e8ve@\u00e9cole.fr");
    assert.equal(utf8.secret, "t0k+/en==");
    const lower = expectCredentials(xoauth2().start(b64(`user=a@b.test\x01auth=bearer ${TOKEN}\x01\x01`)));
    assert.equal(lower.secret, TOKEN);
    const swapped = expectCredentials(xoauth2().start(b64(`auth=Bearer ${TOKEN}\x01user=a@b.test\x01\x01`)));
    assert.equal(swapped.authenticationId, "a@b.test");
    assert.equal(swapped.secret, TOKEN);
  });

  test("the token is redacted from util.inspect and JSON", () => {
    const credentials = expectCredentials(xoauth2().start(b64(message("alice", TOKEN))));
    assert.ok(!inspect(credentials).includes(TOKEN));
    assert.ok(!JSON.stringify(credentials).includes(TOKEN));
  });

  test("malformed responses: 501 5.5.2, without the token in the reply", () => {
    for (const text of [
      `user=alice\x01auth=Bearer ${TOKEN}\x01`, // one ^A at the end
      `user=alice\x01auth=Bearer ${TOKEN}`, // none
      `user=alice\x01auth=Bearer ${TOKEN}\x01\x01\x01`,
      `user=alice\x01\x01auth=Bearer ${TOKEN}\x01\x01`,
      `auth=Bearer ${TOKEN}\x01\x01`, // no user
      "user=alice\x01\x01", // no auth
      `user=\x01auth=Bearer ${TOKEN}\x01\x01`, // empty user
      "user=alice\x01auth=Bearer \x01\x01", // empty token
      `user=alice\x01auth=Basic ${TOKEN}\x01\x01`, // another scheme
      `user=alice\x01auth=Bearer${TOKEN}\x01\x01`, // no space
      `user=alice\x01auth=Bearer  ${TOKEN}\x01\x01`, // two spaces
      `user=alice\x01auth=Bearer ${TOKEN} x\x01\x01`, // space in the token
      `user=alice\x01auth=Bearer ${TOKEN}\u00e9\x01\x01`, // non-ASCII in the token
      `user=alice\x01auth=Bearer ${TOKEN}\t\x01\x01`,
      `user=alice\x01user=bob\x01\x01`,
      `user=alice\x01auth=Bearer ${TOKEN}\x01host=mx.test\x01\x01`, // extra field
      `USER=alice\x01auth=Bearer ${TOKEN}\x01\x01`,
      "",
    ]) {
      assertNoSecret(expectError(xoauth2().start(b64(text)), 501, "5.5.2"), TOKEN, "alice");
      const exchange = xoauth2();
      expectChallenge(exchange.start(undefined), "");
      expectError(exchange.next(b64(text)), 501, "5.5.2");
    }
  });

  test('an empty initial response ("=") or empty line: 501 5.5.2', () => {
    expectError(xoauth2().start("="), 501, "5.5.2");
    const exchange = xoauth2();
    expectChallenge(exchange.start(undefined), "");
    expectError(exchange.next(""), 501, "5.5.2");
  });

  test("CR, LF or NUL in the user: 501 5.5.2", () => {
    for (const user of ["alice\r\nX: 1", "alice\n", "al\0ice"]) {
      expectError(xoauth2().start(b64(message(user, TOKEN))), 501, "5.5.2");
    }
  });

  test("invalid base64 and invalid UTF-8: 501 5.5.2", () => {
    expectError(xoauth2().start(message("alice", TOKEN)), 501, "5.5.2");
    const invalid = Buffer.concat([
      Buffer.from("user=al"),
      Buffer.from([0xed, 0xa0, 0x80]),
      Buffer.from(`\x01auth=Bearer ${TOKEN}\x01\x01`),
    ]);
    expectError(xoauth2().start(invalid.toString("base64")), 501, "5.5.2");
  });

  test('"*" after the empty challenge cancels: 501 5.0.0', () => {
    const exchange = xoauth2();
    expectChallenge(exchange.start(undefined), "");
    expectError(exchange.next("*"), 501, "5.0.0");
  });
});
