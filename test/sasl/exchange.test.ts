/**
 * Rules shared by every mechanism (RFC 4954 section 4): the 12,288-octet line limit, cancellation with
 * "*" at every step, misuse of an exchange, and no input that makes an exchange throw or leak.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { saslFailureError } from "../../src/protocol/auth-exchange.js";
import {
  createExchange,
  MAX_SASL_LINE_OCTETS,
  SASL_MECHANISMS,
  type SaslExchange,
  type SaslMechanismName,
  type SaslStep,
} from "../../src/sasl/mechanism.js";
import { b64, expectChallenge, expectCredentials, expectError } from "./helpers.js";

const options = { hostname: "mx.test" };

/** A PLAIN message whose base64 is exactly `length` characters (a multiple of 4). */
function plainOfBase64Length(length: number): string {
  const bytes = (length / 4) * 3;
  const password = "p".repeat(bytes - "\0alice\0".length);
  const encoded = b64(`\0alice\0${password}`);
  assert.equal(encoded.length, length);
  return encoded;
}

/**
 * Every way to reach a point where the exchange waits for a client line: the mechanism, how it was
 * started, and the lines already sent.
 */
const WAITING_POINTS: { name: string; mechanism: SaslMechanismName; initial?: string; lines: string[] }[] = [
  { name: "PLAIN after 334", mechanism: "PLAIN", lines: [] },
  { name: "LOGIN at Username:", mechanism: "LOGIN", lines: [] },
  { name: "LOGIN at Password:", mechanism: "LOGIN", lines: [b64("alice")] },
  {
    name: "LOGIN at Password: after an initial user name",
    mechanism: "LOGIN",
    initial: b64("alice"),
    lines: [],
  },
  { name: "CRAM-MD5 after its challenge", mechanism: "CRAM-MD5", lines: [] },
  { name: "XOAUTH2 after 334", mechanism: "XOAUTH2", lines: [] },
];

function reach(point: (typeof WAITING_POINTS)[number]): SaslExchange {
  const exchange = createExchange(point.mechanism, options);
  expectChallenge(exchange.start(point.initial));
  for (const line of point.lines) expectChallenge(exchange.next(line));
  return exchange;
}

describe("line length (RFC 4954 section 4)", () => {
  test(`MAX_SASL_LINE_OCTETS is ${12288}`, () => {
    assert.equal(MAX_SASL_LINE_OCTETS, 12288);
  });

  test("a 12,288-octet response is accepted, as a line and as an initial response", () => {
    const response = plainOfBase64Length(12288);
    const exchange = createExchange("PLAIN", options);
    expectChallenge(exchange.start(undefined), "");
    const credentials = expectCredentials(exchange.next(response));
    assert.equal(credentials.authenticationId, "alice");
    assert.equal(credentials.secret.length, 9216 - 7);
    expectCredentials(createExchange("PLAIN", options).start(response));
  });

  test("a 12,289-octet line is refused with 500 5.5.6 at every step, before any base64 check", () => {
    const tooLong = `${plainOfBase64Length(12288)}A`;
    assert.equal(tooLong.length, 12289);
    for (const point of WAITING_POINTS) {
      const error = expectError(reach(point).next(tooLong), 500, "5.5.6");
      assert.equal(error.render(), "500 5.5.6 Authentication exchange line is too long\r\n", point.name);
    }
    // Valid base64 one quantum longer: refused for its length alone.
    expectError(createExchange("PLAIN", options).start(plainOfBase64Length(12292)), 500, "5.5.6");
    expectError(createExchange("XOAUTH2", options).start(tooLong), 500, "5.5.6");
  });

  test("the limit counts UTF-8 octets, not characters", () => {
    const exchange = createExchange("PLAIN", options);
    expectChallenge(exchange.start(undefined), "");
    // 6,145 characters, 12,290 octets.
    expectError(exchange.next("\u00e9".repeat(6145)), 500, "5.5.6");
    // Short enough in octets: an ordinary base64 failure.
    const short = createExchange("PLAIN", options);
    expectChallenge(short.start(undefined), "");
    expectError(short.next("\u00e9".repeat(6144)), 501, "5.5.2");
  });

  test("a 5 MB line is refused by its length", () => {
    const exchange = createExchange("LOGIN", options);
    expectChallenge(exchange.start(undefined));
    expectError(exchange.next("A".repeat(5 * 1024 * 1024)), 500, "5.5.6");
  });
});

describe("cancellation (RFC 4954 section 4)", () => {
  for (const point of WAITING_POINTS) {
    test(`"*" cancels ${point.name}: 501 5.0.0 and the exchange is over`, () => {
      const exchange = reach(point);
      const error = expectError(exchange.next("*"), 501, "5.0.0");
      assert.equal(error.render(), "501 5.0.0 Authentication cancelled\r\n");
      assert.throws(() => exchange.next(b64("alice")), /over/);
    });
  }

  test('only a lone "*" cancels', () => {
    for (const line of ["* ", " *", "**", "*\r"]) {
      const exchange = createExchange("LOGIN", options);
      expectChallenge(exchange.start(undefined));
      expectError(exchange.next(line), 501, "5.5.2");
    }
  });

  test('"*" as the initial response is invalid base64, not a cancellation', () => {
    for (const mechanism of ["PLAIN", "LOGIN", "XOAUTH2"] as const) {
      expectError(createExchange(mechanism, options).start("*"), 501, "5.5.2");
    }
  });
});

describe("invalid base64 at every step", () => {
  for (const point of WAITING_POINTS) {
    test(`${point.name}: 501 5.5.2`, () => {
      for (const line of ["YWxpY2U", "YWxp Y2U=", "YWxpY2U=\r", "YW=xpY2U", "=", "YWxpY2V="]) {
        const error = expectError(reach(point).next(line), 501, "5.5.2");
        assert.equal(error.render(), "501 5.5.2 Cannot decode response: invalid base64\r\n");
      }
    });
  }
});

describe("using an exchange out of order", () => {
  test("next() before start() throws", () => {
    for (const mechanism of SASL_MECHANISMS) {
      assert.throws(() => createExchange(mechanism, options).next(""), /not started/);
    }
  });

  test("start() twice throws", () => {
    for (const mechanism of SASL_MECHANISMS) {
      const exchange = createExchange(mechanism, options);
      exchange.start(undefined);
      assert.throws(() => exchange.start(undefined), /already started/);
    }
  });

  test("next() after credentials or an error throws", () => {
    const succeeded = createExchange("PLAIN", options);
    expectCredentials(succeeded.start(b64("\0alice\0s3cret")));
    assert.throws(() => succeeded.next(b64("\0alice\0s3cret")), /over/);
    const failed = createExchange("PLAIN", options);
    expectError(failed.start("!"), 501, "5.5.2");
    assert.throws(() => failed.next(b64("\0alice\0s3cret")), /over/);
  });
});

describe("robustness (property)", () => {
  const isWellFormed = (step: SaslStep): boolean => {
    if (step.kind === "challenge") return /^[A-Za-z0-9+/]*={0,2}$/.test(step.text);
    if (step.kind === "failed") {
      return /^5\d\d 5\.\d\.\d+ [^\r\n]+\r\n$/.test(saslFailureError(step.failure).render());
    }
    return typeof step.credentials.secret === "string";
  };

  test("no sequence of lines makes an exchange throw; every step is well formed", () => {
    const line = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes).toString("base64")),
      fc.constantFrom(
        "*",
        "=",
        "",
        b64("\0alice\0s3cret"),
        b64("alice"),
        b64("tim 0123456789abcdef0123456789abcdef"),
      ),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...SASL_MECHANISMS),
        fc.option(line, { nil: undefined }),
        fc.array(line, { maxLength: 4 }),
        (mechanism, initial, lines) => {
          const exchange = createExchange(mechanism, options);
          let step = exchange.start(initial);
          assert.ok(isWellFormed(step));
          for (const next of lines) {
            if (step.kind !== "challenge") break;
            step = exchange.next(next);
            assert.ok(isWellFormed(step));
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  test("error replies never echo the client's response", () => {
    // "#" appears in no error text, so a marked secret can only be in a reply if it was echoed.
    fc.assert(
      fc.property(fc.constantFrom(...SASL_MECHANISMS), fc.string({ maxLength: 30 }), (mechanism, body) => {
        const secret = `#${body}#`;
        const exchange = createExchange(mechanism, options);
        let step = exchange.start(undefined);
        for (const text of [`\0${secret}\0${secret}\n`, secret, `${secret} x`, `user=${secret}\x01\x01`]) {
          if (step.kind !== "challenge") break;
          step = exchange.next(b64(text));
        }
        if (step.kind === "failed") {
          const error = saslFailureError(step.failure);
          assert.ok(!error.render().includes("#"));
          assert.ok(!error.message.includes("#"));
          assert.ok(!step.failure.reason.includes("#"));
        }
      }),
      { numRuns: 300 },
    );
  });
});
