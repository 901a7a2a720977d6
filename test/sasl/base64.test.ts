/**
 * The strict base64 decoder that guards every SASL response (RFC 4648 section 4, RFC 4954 section 4):
 * exactly one accepted encoding per byte string, where Buffer.from(text, "base64") would accept junk.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { decodeBase64Strict, encodeBase64 } from "../../src/sasl/base64.js";

describe("decodeBase64Strict", () => {
  test("decodes canonical base64 of every padding length", () => {
    assert.deepEqual(decodeBase64Strict(""), Buffer.alloc(0));
    assert.equal(decodeBase64Strict("QQ==")?.toString("latin1"), "A");
    assert.equal(decodeBase64Strict("QUI=")?.toString("latin1"), "AB");
    assert.equal(decodeBase64Strict("QUJD")?.toString("latin1"), "ABC");
    assert.deepEqual(decodeBase64Strict("+/+/"), Buffer.from([0xfb, 0xff, 0xbf]));
    assert.equal(decodeBase64Strict("AGFsaWNlAHNlY3JldA==")?.toString("latin1"), "\0alice\0secret");
  });

  test("refuses what Node's lenient decoder would accept", () => {
    const refused = [
      "QQ", // missing padding
      "QUI", // missing padding
      "Q", // length 1
      "=", // the "empty initial response" marker is not base64
      "*",
      "QQ=", // short padding
      "Q===", // three pad characters
      "====",
      "=QQQ", // padding first (RFC 4954 section 4: "=AAA")
      "AAA=BBBB", // padding in the middle ("AAA=BBB")
      "QQ==QQ==",
      "QUJD ", // trailing space
      " QUJD",
      "QU JD",
      "QUJD\r",
      "QUJD\n",
      "QU\tJD",
      "-_-_", // URL-safe alphabet
      "QUJ!",
      "QUJ\u00e9",
      "\u0000QUJ",
      "QR==", // non-zero bits after the last byte
      "QUJ=".replace("J", "K"), // "QUK=": non-zero trailing bits
    ];
    for (const text of refused) {
      assert.equal(decodeBase64Strict(text), undefined, JSON.stringify(text));
    }
  });

  test("round-trips any bytes, and accepts only the canonical encoding (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const encoded = Buffer.from(bytes).toString("base64");
        assert.deepEqual(decodeBase64Strict(encoded), Buffer.from(bytes));
      }),
      { numRuns: 300 },
    );
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ *\r\n".split("");
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...alphabet), { maxLength: 16 }), (chars) => {
        const text = chars.join("");
        const decoded = decodeBase64Strict(text);
        if (decoded !== undefined) assert.equal(decoded.toString("base64"), text);
        else assert.notEqual(Buffer.from(text, "base64").toString("base64"), text);
      }),
      { numRuns: 2000 },
    );
  });

  test("encodeBase64 encodes UTF-8", () => {
    assert.equal(encodeBase64("Username:"), "VXNlcm5hbWU6");
    assert.equal(encodeBase64("Password:"), "UGFzc3dvcmQ6");
    assert.equal(encodeBase64("é"), "w6k=");
  });
});
