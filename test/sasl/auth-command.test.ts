/** parseAuthCommand, the mechanism list and the 504 for unknown mechanisms (RFC 4954 sections 4, 6, 7). */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { saslFailureError } from "../../src/protocol/auth-exchange.js";
import { SmtpError } from "../../src/protocol/errors.js";
import {
  createExchange,
  isSaslMechanismName,
  parseAuthCommand,
  SASL_MECHANISMS,
  SaslError,
  type SaslMechanismName,
  unrecognizedMechanism,
} from "../../src/sasl/mechanism.js";

function expectSyntaxError(args: string): void {
  assert.throws(
    () => parseAuthCommand(args),
    (error: unknown) => {
      if (!(error instanceof SaslError)) return false;
      const reply = saslFailureError(error.failure);
      return (
        reply.code === 501 &&
        reply.enhancedCode === "5.5.4" &&
        reply.render() === "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n"
      );
    },
    JSON.stringify(args),
  );
}

describe("parseAuthCommand", () => {
  test("a mechanism alone", () => {
    assert.deepEqual(parseAuthCommand("PLAIN"), { mechanism: "PLAIN", initialResponse: undefined });
    assert.deepEqual(parseAuthCommand("CRAM-MD5"), { mechanism: "CRAM-MD5", initialResponse: undefined });
  });

  test("mechanism names are case-insensitive and come back upper-cased", () => {
    assert.deepEqual(parseAuthCommand("login"), { mechanism: "LOGIN", initialResponse: undefined });
    assert.deepEqual(parseAuthCommand("xOAuth2"), { mechanism: "XOAUTH2", initialResponse: undefined });
    assert.deepEqual(parseAuthCommand("cram-md5"), { mechanism: "CRAM-MD5", initialResponse: undefined });
  });

  test("a mechanism and its initial response, which is passed on unchanged", () => {
    assert.deepEqual(parseAuthCommand("PLAIN AGFsaWNlAHNlY3JldA=="), {
      mechanism: "PLAIN",
      initialResponse: "AGFsaWNlAHNlY3JldA==",
    });
    assert.deepEqual(parseAuthCommand("PLAIN ="), { mechanism: "PLAIN", initialResponse: "=" });
    // Case matters in base64: the response is not upper-cased.
    assert.deepEqual(parseAuthCommand("login YWxpY2U="), { mechanism: "LOGIN", initialResponse: "YWxpY2U=" });
    // Validation of the response belongs to the exchange.
    assert.deepEqual(parseAuthCommand("PLAIN !!"), { mechanism: "PLAIN", initialResponse: "!!" });
  });

  test("extra spaces between and after the arguments are tolerated", () => {
    assert.deepEqual(parseAuthCommand("PLAIN   dGVzdA==  "), {
      mechanism: "PLAIN",
      initialResponse: "dGVzdA==",
    });
    assert.deepEqual(parseAuthCommand("LOGIN "), { mechanism: "LOGIN", initialResponse: undefined });
  });

  test("well-formed unknown mechanisms are returned for the caller to refuse", () => {
    assert.deepEqual(parseAuthCommand("GSSAPI"), { mechanism: "GSSAPI", initialResponse: undefined });
    assert.deepEqual(parseAuthCommand("SCRAM-SHA-256 biwsbj11c2VyLHI9Znlrbyt"), {
      mechanism: "SCRAM-SHA-256",
      initialResponse: "biwsbj11c2VyLHI9Znlrbyt",
    });
    assert.deepEqual(parseAuthCommand("X_20_CHARACTERS_NAME"), {
      mechanism: "X_20_CHARACTERS_NAME",
      initialResponse: undefined,
    });
  });

  test("501 5.5.4 without a mechanism, with a malformed one, or with too many arguments", () => {
    expectSyntaxError("");
    expectSyntaxError("   ");
    expectSyntaxError("PLAIN dGVzdA== extra");
    expectSyntaxError("X_21_CHARACTERS_NAMEX"); // sasl-mech is 1*20 characters
    expectSyntaxError("PLA.IN");
    expectSyntaxError("PLAIN\tdGVzdA==");
    expectSyntaxError("PL\u00c4IN");
    expectSyntaxError("pla\u0131n"); // dotless i upper-cases to "PLAIN"
    expectSyntaxError("\u017fcram-md5"); // long s upper-cases to "S"
    expectSyntaxError("PLAIN\r");
  });
});

describe("mechanism names", () => {
  test("SASL_MECHANISMS lists the four implemented mechanisms", () => {
    assert.deepEqual([...SASL_MECHANISMS], ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"]);
    assert.ok(Object.isFrozen(SASL_MECHANISMS));
    for (const name of SASL_MECHANISMS) {
      assert.ok(isSaslMechanismName(name));
      assert.equal(createExchange(name, { hostname: "mx.test" }).mechanism, name);
    }
  });

  test("isSaslMechanismName expects the upper-case name parseAuthCommand returns", () => {
    assert.equal(isSaslMechanismName("plain"), false);
    assert.equal(isSaslMechanismName("GSSAPI"), false);
    assert.equal(isSaslMechanismName(""), false);
  });

  test("unrecognizedMechanism is answered 504 5.5.4, a fresh value each time", () => {
    const failure = unrecognizedMechanism();
    const error = saslFailureError(failure);
    assert.ok(error instanceof SmtpError);
    assert.equal(error.render(), "504 5.5.4 Unrecognized authentication type\r\n");
    assert.notEqual(unrecognizedMechanism(), failure);
  });

  test("createExchange refuses a name outside SaslMechanismName", () => {
    assert.throws(() => createExchange("GSSAPI" as SaslMechanismName, { hostname: "mx.test" }), TypeError);
  });
});
