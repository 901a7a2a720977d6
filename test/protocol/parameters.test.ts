/**
 * The MAIL FROM and RCPT TO parameters, rule by rule, without a session: what each offer accepts, what
 * it records on the envelope, and the reply for each kind of bad value (RFC 1870, 3461, 6152, 3030, 6531,
 * 8689; RFC 5321 4.1.1.11 for an unoffered parameter).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { EsmtpParams } from "../../src/protocol/commands.js";
import { emptyEnvelope } from "../../src/protocol/context.js";
import {
  type MailParameterOffer,
  recipientDsn,
  recordMailParameters,
} from "../../src/protocol/parameters.js";
import { refusal } from "../helpers/refusal.js";

const ALL: MailParameterOffer = {
  internationalization: true,
  chunking: true,
  dsn: true,
  requireTls: true,
  maxMessageSize: 1000,
};
const NONE: MailParameterOffer = {
  internationalization: false,
  chunking: false,
  dsn: false,
  requireTls: false,
  maxMessageSize: 0,
};

function mail(params: EsmtpParams, offer: Partial<MailParameterOffer> = {}, encrypted = true) {
  const envelope = emptyEnvelope();
  recordMailParameters(envelope, params, { ...ALL, ...offer }, encrypted);
  return envelope;
}

describe("MAIL FROM parameters", () => {
  test("none offered: every known keyword is refused as unsupported, and so is an unknown one", () => {
    for (const params of [
      { BODY: "8BITMIME" },
      { RET: "FULL" },
      { ENVID: "x" },
      { REQUIRETLS: true },
      { SMTPUTF8: true },
    ] as EsmtpParams[]) {
      const [keyword] = Object.keys(params);
      assert.equal(
        refusal(() => mail(params, NONE)),
        `555 5.5.4 Unsupported parameter ${keyword}`,
      );
    }
    assert.equal(
      refusal(() => mail({ FOO: "1" })),
      "555 5.5.4 Unsupported parameter FOO",
    );
    // SIZE needs no offer of its own: RFC 1870 lets a client declare a size to any server.
    assert.equal(mail({ SIZE: "10" }, NONE).declaredSize, 10);
  });

  test("BODY: 7BIT and 8BITMIME with 8BITMIME offered, BINARYMIME with CHUNKING, any case, recorded in lower case", () => {
    assert.equal(mail({ BODY: "7bit" }).encodingBody, "7bit");
    assert.equal(mail({ BODY: "8BitMime" }).encodingBody, "8bitmime");
    assert.equal(mail({ BODY: "BINARYMIME" }).encodingBody, "binarymime");
    assert.equal(mail({ BODY: "8BITMIME" }, { chunking: false }).encodingBody, "8bitmime");
    assert.equal(mail({ BODY: "BINARYMIME" }, { internationalization: false }).encodingBody, "binarymime");
    assert.equal(
      refusal(() => mail({ BODY: "BINARYMIME" }, { chunking: false })),
      "501 5.5.4 Error: BODY must be 7BIT or 8BITMIME",
    );
    assert.equal(
      refusal(() => mail({ BODY: "8BITMIME" }, { internationalization: false })),
      "501 5.5.4 Error: BODY must be BINARYMIME",
    );
    assert.equal(
      refusal(() => mail({ BODY: "QUOTED" })),
      "501 5.5.4 Error: BODY must be 7BIT or 8BITMIME or BINARYMIME",
    );
    assert.equal(
      refusal(() => mail({ BODY: true })),
      "501 5.5.4 Error: BODY must be 7BIT or 8BITMIME or BINARYMIME",
    );
  });

  test("RET: FULL or HDRS, any case, recorded in upper case; anything else, or no value, is 501", () => {
    assert.equal(mail({ RET: "full" }).dsn.ret, "FULL");
    assert.equal(mail({ RET: "Hdrs" }).dsn.ret, "HDRS");
    for (const value of ["FULLY", "XHDRS", "", true] as const) {
      assert.equal(
        refusal(() => mail({ RET: value })),
        "501 5.5.4 Error: RET must be FULL or HDRS",
      );
    }
  });

  test("ENVID: xtext, decoded, at most 100 octets", () => {
    assert.equal(mail({ ENVID: "QQ+2B1" }).dsn.envid, "QQ+1");
    assert.equal(mail({ ENVID: "x".repeat(100) }).dsn.envid, "x".repeat(100));
    for (const value of ["x".repeat(101), "a+2", "a+zz", "a=b", "", true] as const) {
      assert.equal(
        refusal(() => mail({ ENVID: value })),
        "501 5.5.4 Error: invalid ENVID value",
      );
    }
  });

  test("REQUIRETLS: offered, without a value, and only over TLS", () => {
    assert.equal(mail({ REQUIRETLS: true }).requireTls, true);
    assert.equal(mail({}).requireTls, false);
    assert.equal(
      refusal(() => mail({ REQUIRETLS: "yes" })),
      "501 5.5.4 Error: REQUIRETLS takes no value",
    );
    assert.equal(
      refusal(() => mail({ REQUIRETLS: true }, {}, false)),
      "530 5.7.10 REQUIRETLS needs a TLS connection",
    );
    assert.equal(
      refusal(() => mail({ REQUIRETLS: true }, { requireTls: false })),
      "555 5.5.4 Unsupported parameter REQUIRETLS",
    );
  });

  test("SMTPUTF8: without a value, recorded as utf8", () => {
    assert.equal(mail({ SMTPUTF8: true }).encodingUtf8, "utf8");
    assert.equal(mail({}).encodingUtf8, "");
    assert.equal(
      refusal(() => mail({ SMTPUTF8: "1" })),
      "501 5.5.4 Error: SMTPUTF8 takes no value",
    );
  });

  test("SIZE: 1 to 20 digits; over the limit is 552 at MAIL; a limit of 0 is none", () => {
    assert.equal(mail({ SIZE: "1000" }).declaredSize, 1000, "the limit itself is accepted");
    assert.equal(mail({ SIZE: "0" }).declaredSize, 0);
    assert.equal(mail({ SIZE: "9".repeat(20) }, { maxMessageSize: 0 }).declaredSize, Number("9".repeat(20)));
    assert.equal(mail({}).declaredSize, null);
    assert.equal(
      refusal(() => mail({ SIZE: "1001" })),
      "552 5.3.4 Message size exceeds fixed maximum message size",
    );
    for (const value of ["", "1e3", "-1", "+1", " 1", "12a", "9".repeat(21), true] as const) {
      assert.equal(
        refusal(() => mail({ SIZE: value }, { maxMessageSize: 0 })),
        "501 5.5.4 Error: SIZE must be a number of octets",
        JSON.stringify(value),
      );
    }
  });

  test("several parameters are all recorded; the first bad one decides the reply", () => {
    const envelope = mail({ BODY: "8BITMIME", SMTPUTF8: true, SIZE: "10", RET: "HDRS", ENVID: "e1" });
    assert.equal(envelope.encodingBody, "8bitmime");
    assert.equal(envelope.encodingUtf8, "utf8");
    assert.equal(envelope.declaredSize, 10);
    assert.deepEqual(envelope.dsn, { ret: "HDRS", envid: "e1" });
    assert.equal(
      refusal(() => mail({ SIZE: "x", RET: "nope" })),
      "501 5.5.4 Error: SIZE must be a number of octets",
    );
  });
});

describe("RCPT TO parameters", () => {
  test("without DSN offered, NOTIFY and ORCPT are unsupported; with it, so is any other keyword", () => {
    assert.equal(
      refusal(() => recipientDsn({ NOTIFY: "NEVER" }, false)),
      "555 5.5.4 Unsupported parameter NOTIFY",
    );
    assert.equal(
      refusal(() => recipientDsn({ ORCPT: "rfc822;a@b.example" }, false)),
      "555 5.5.4 Unsupported parameter ORCPT",
    );
    assert.equal(
      refusal(() => recipientDsn({ SIZE: "1" }, true)),
      "555 5.5.4 Unsupported parameter SIZE",
    );
    assert.deepEqual(recipientDsn({}, false), { notify: null, orcpt: null });
  });

  test("NOTIFY and ORCPT need a value", () => {
    assert.equal(
      refusal(() => recipientDsn({ NOTIFY: true }, true)),
      "501 5.5.4 Error: NOTIFY needs a value",
    );
    assert.equal(
      refusal(() => recipientDsn({ ORCPT: true }, true)),
      "501 5.5.4 Error: ORCPT needs a value",
    );
  });

  test("NOTIFY: NEVER alone, or SUCCESS, FAILURE, DELAY in any order and case, a repeated one counted once", () => {
    assert.deepEqual(recipientDsn({ NOTIFY: "never" }, true).notify, ["NEVER"]);
    assert.deepEqual(recipientDsn({ NOTIFY: "DELAY,success,Failure" }, true).notify, [
      "DELAY",
      "SUCCESS",
      "FAILURE",
    ]);
    assert.deepEqual(recipientDsn({ NOTIFY: "SUCCESS,SUCCESS" }, true).notify, ["SUCCESS"]);
    for (const value of ["NEVER,SUCCESS", "NEVER,NEVER", "SUCCESS,", "", "ALWAYS", "SUCCESS;FAILURE"]) {
      assert.equal(
        refusal(() => recipientDsn({ NOTIFY: value }, true)),
        "501 5.5.4 Error: NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY",
        value,
      );
    }
  });

  test("ORCPT: addr-type;xtext, the type in lower case, the address decoded, at most 500 octets", () => {
    assert.deepEqual(recipientDsn({ ORCPT: "RFC822;a+2Bb@example.com" }, true).orcpt, {
      type: "rfc822",
      address: "a+b@example.com",
    });
    assert.deepEqual(recipientDsn({ ORCPT: `x-Type-9;${"a".repeat(500)}` }, true).orcpt, {
      type: "x-type-9",
      address: "a".repeat(500),
    });
    for (const value of [";a@b.example", "rfc822", "rfc 822;a@b.example", "rfc_822;a@b.example"]) {
      assert.equal(
        refusal(() => recipientDsn({ ORCPT: value }, true)),
        "501 5.5.4 Error: ORCPT must be addr-type;address",
        value,
      );
    }
    for (const value of ["rfc822;", `rfc822;${"a".repeat(501)}`, "rfc822;a+0Ab"]) {
      assert.equal(
        refusal(() => recipientDsn({ ORCPT: value }, true)),
        "501 5.5.4 Error: invalid ORCPT value",
      );
    }
  });

  test("both together", () => {
    assert.deepEqual(recipientDsn({ NOTIFY: "FAILURE", ORCPT: "rfc822;a@b.example" }, true), {
      notify: ["FAILURE"],
      orcpt: { type: "rfc822", address: "a@b.example" },
    });
  });
});
