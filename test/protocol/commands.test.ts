/**
 * One command line's parsing, rule by rule, without a session (RFC 5321 4.1, 4.1.2, 4.1.3, 4.5.3.1;
 * RFC 6531 for UTF-8; RFC 3461 4 for xtext): the verb and its arguments, paths, mailboxes, address
 * literals and ESMTP parameters, with the reply each kind of bad input gets.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  decodeCommandLine,
  decodeXtext,
  isAddressLiteral,
  isAsciiText,
  parseEsmtpParams,
  parsePathArgument,
} from "../../src/protocol/commands.js";
import { refusal } from "../helpers/refusal.js";

const line = (text: string | Buffer) =>
  decodeCommandLine(typeof text === "string" ? Buffer.from(text, "latin1") : text);
const from = (args: string, utf8 = false) => parsePathArgument(args, "FROM:", utf8);
const to = (args: string, utf8 = false) => parsePathArgument(args, "TO:", utf8);
/** A parsed path with its parameters as a plain object (they have a null prototype). */
const plain = ({ address, params }: { address: string; params: object }) => ({
  address,
  params: { ...params },
});

describe("decodeCommandLine", () => {
  test("the verb in upper case, the arguments after the spaces that follow it, the line as text", () => {
    assert.deepEqual(line("mail FROM:<a@b.example>"), {
      verb: "MAIL",
      args: "FROM:<a@b.example>",
      text: "mail FROM:<a@b.example>",
      nonAscii: false,
    });
    assert.deepEqual(line("RCPT   TO:<a@b.example>"), {
      verb: "RCPT",
      args: "TO:<a@b.example>",
      text: "RCPT   TO:<a@b.example>",
      nonAscii: false,
    });
    assert.deepEqual(line("NOOP"), { verb: "NOOP", args: "", text: "NOOP", nonAscii: false });
    assert.deepEqual(line(""), { verb: "", args: "", text: "", nonAscii: false });
  });

  test("white space (SP, TAB, VT, FF) around the line is dropped; the verb ends at any of them", () => {
    assert.deepEqual(line(" \tNOOP \t\v\f"), { verb: "NOOP", args: "", text: "NOOP", nonAscii: false });
    assert.equal(line("BDAT\t59").verb, "BDAT");
    assert.equal(line("BDAT\t59").args, "\t59", "only spaces separate the arguments");
    assert.equal(line("DATA\v").verb, "DATA");
    assert.equal(line("DATA\f").verb, "DATA");
    assert.equal(line("EHLO\vx").verb, "EHLO");
    assert.equal(line("EHLO\fx").verb, "EHLO");
    assert.equal(line("   ").verb, "");
  });

  test("NUL or CR anywhere is refused, not stripped", () => {
    for (const text of ["NO\0OP", "MAIL FROM:<a@b.example>\r", "\rNOOP", "NOOP \0"]) {
      assert.equal(
        refusal(() => line(text)),
        "501 5.5.2 Syntax error: NUL or bare CR in command",
        JSON.stringify(text),
      );
    }
  });

  test("valid UTF-8 is decoded and flagged; invalid UTF-8 is refused", () => {
    const decoded = line(Buffer.from("RCPT TO:<pelé@example.com>", "utf8"));
    assert.equal(decoded.args, "TO:<pelé@example.com>");
    assert.equal(decoded.nonAscii, true);
    assert.equal(
      refusal(() => line(Buffer.from([0x4e, 0x4f, 0x4f, 0x50, 0x20, 0xc3]))),
      "500 5.5.2 Syntax error: invalid UTF-8 in command",
    );
    // Latin-1 bytes that are not UTF-8 are not read as Latin-1 either.
    assert.equal(
      refusal(() => line(Buffer.from([0x4e, 0x4f, 0x4f, 0x50, 0x20, 0xe9]))),
      "500 5.5.2 Syntax error: invalid UTF-8 in command",
    );
  });
});

describe("parsePathArgument", () => {
  test("MAIL FROM:<path> and RCPT TO:<path>, the keyword in any case, spaces after the colon tolerated", () => {
    assert.deepEqual(plain(from("FROM:<a@b.example>")), { address: "a@b.example", params: {} });
    assert.equal(from("from:<a@b.example>").address, "a@b.example");
    assert.equal(from("FROM:   <a@b.example>").address, "a@b.example");
    assert.equal(to("To:<a@b.example>").address, "a@b.example");
    assert.equal(
      refusal(() => from("TO:<a@b.example>")),
      "501 5.5.4 Syntax: MAIL FROM:<address>",
    );
    assert.equal(
      refusal(() => to("FROM:<a@b.example>")),
      "501 5.5.4 Syntax: RCPT TO:<address>",
    );
    assert.equal(
      refusal(() => from("FROM <a@b.example>")),
      "501 5.5.4 Syntax: MAIL FROM:<address>",
    );
    assert.equal(
      refusal(() => to("")),
      "501 5.5.4 Syntax: RCPT TO:<address>",
    );
  });

  test("the null reverse-path <> for the sender only", () => {
    assert.equal(from("FROM:<>").address, "");
    assert.equal(
      refusal(() => to("TO:<>")),
      "501 5.1.3 Syntax error: empty recipient",
    );
  });

  test("a missing > is refused, with the sender's or the destination's enhanced code", () => {
    assert.equal(
      refusal(() => from("FROM:<a@b.example")),
      "501 5.1.7 Syntax error in address: missing >",
    );
    assert.equal(
      refusal(() => to("TO:<a@b.example")),
      "501 5.1.3 Syntax error in address: missing >",
    );
  });

  test("a > inside a quoted local part does not close the path; an escaped quote does not end the quotes", () => {
    assert.equal(from('FROM:<"a>b"@c.example>').address, '"a>b"@c.example');
    assert.equal(from('FROM:<"a\\">b"@c.example>').address, '"a\\">b"@c.example');
    assert.equal(
      refusal(() => from('FROM:<"a>b@c.example>')),
      "501 5.1.7 Syntax error in address: missing >",
    );
  });

  test("a bare address without brackets is tolerated, up to the first space", () => {
    assert.deepEqual(plain(to("TO:a@b.example SIZE=1")), { address: "a@b.example", params: { SIZE: "1" } });
    assert.equal(to("TO:a@b.example").address, "a@b.example");
    assert.equal(
      refusal(() => to("TO:")),
      "501 5.1.3 Syntax error: missing address",
    );
    assert.equal(
      refusal(() => from("FROM: ")),
      "501 5.1.7 Syntax error: missing address",
    );
  });

  test("a source route is accepted and dropped; one without its colon is refused", () => {
    assert.equal(to("TO:<@relay.example,@other.example:a@b.example>").address, "a@b.example");
    assert.equal(
      refusal(() => to("TO:<@relay.example>")),
      "501 5.1.3 Syntax error in source route",
    );
    assert.equal(
      refusal(() => from("FROM:<@relay.example>")),
      "501 5.1.7 Syntax error in source route",
    );
  });

  test("parameters follow the path after a space", () => {
    assert.deepEqual(
      { ...from("FROM:<a@b.example> SIZE=10 BODY=8BITMIME").params },
      {
        SIZE: "10",
        BODY: "8BITMIME",
      },
    );
    assert.equal(
      refusal(() => from("FROM:<a@b.example>SIZE=10")),
      "501 5.5.4 Syntax error: parameters must follow the address after a space",
    );
  });

  test("Postmaster without a domain is a valid recipient, in any case; not a valid sender", () => {
    assert.equal(to("TO:<Postmaster>").address, "Postmaster");
    assert.equal(to("TO:<POSTMASTER>").address, "POSTMASTER");
    assert.equal(
      refusal(() => from("FROM:<postmaster>")),
      "501 5.1.7 Syntax error in mailbox: expected local-part@domain",
    );
    assert.equal(
      refusal(() => to("TO:<postmistress>")),
      "501 5.1.3 Syntax error in mailbox: expected local-part@domain",
    );
  });

  test("a mailbox needs a local part and a domain around its last @", () => {
    for (const mailbox of ["a@", "ab.example"]) {
      assert.equal(
        refusal(() => to(`TO:<${mailbox}>`)),
        "501 5.1.3 Syntax error in mailbox: expected local-part@domain",
        mailbox,
      );
    }
    assert.equal(to('TO:<"a@b"@c.example>').address, '"a@b"@c.example');
  });

  test("RFC 5321 4.5.3.1 limits: a path of 256 octets with its brackets, a local part of 64, a domain of 255", () => {
    const local64 = "l".repeat(64);
    const domain = (octets: number) => {
      const labels: string[] = [];
      let left = octets;
      while (left > 0) {
        const size = Math.min(63, left === 64 ? 62 : left);
        labels.push("d".repeat(size));
        left -= size + 1;
      }
      return labels.join(".");
    };
    const longest = `${local64}@${domain(254 - 65)}`;
    assert.equal(Buffer.byteLength(longest), 254);
    assert.equal(to(`TO:<${longest}>`).address, longest);
    assert.equal(
      refusal(() => to(`TO:<${longest}x>`)),
      "501 5.1.3 Path too long (more than 256 octets)",
    );
    assert.equal(
      refusal(() => to(`TO:<${local64}l@b.example>`)),
      "501 5.1.3 Local part too long (more than 64 octets)",
    );
    assert.equal(
      refusal(() => from(`FROM:<${local64}l@b.example>`)),
      "501 5.1.7 Local part too long (more than 64 octets)",
    );
    // Octets, not characters: 32 two-octet characters fill the local part, one more is too many.
    assert.equal(to(`TO:<${"é".repeat(32)}@b.example>`, true).address, `${"é".repeat(32)}@b.example`);
    assert.equal(
      refusal(() => to(`TO:<${"é".repeat(33)}@b.example>`, true)),
      "501 5.1.3 Local part too long (more than 64 octets)",
    );
  });

  test("local parts: dot-atoms of atext, or a quoted string", () => {
    for (const local of ["a", "a.b", "a+tag", "!#$%&'*+-/=?^_`{|}~", "0"]) {
      assert.equal(to(`TO:<${local}@b.example>`).address, `${local}@b.example`, local);
    }
    for (const local of ["a..b", ".a", "a.", "a b", "a(b)", "a,b", "a[b", "a\\b"]) {
      assert.equal(
        refusal(() => to(`TO:<${local}@b.example>`)),
        "501 5.1.3 Syntax error in the local part of the mailbox",
        local,
      );
    }
    assert.equal(to('TO:<"a b"@b.example>').address, '"a b"@b.example');
    assert.equal(to('TO:<"a\\"b"@b.example>').address, '"a\\"b"@b.example');
    assert.equal(
      refusal(() => to('TO:<"a\tb"@b.example>')),
      "501 5.1.3 Syntax error in the local part of the mailbox",
    );
    assert.equal(
      refusal(() => from('FROM:<"a"x@b.example>')),
      "501 5.1.7 Syntax error in the local part of the mailbox",
    );
  });

  test("domains: letters, digits, hyphens inside labels, underscores tolerated; or an address literal", () => {
    for (const domain of ["b.example", "B-1.example", "_dmarc.example", "a", "1.2.3.4.example", "x-y.z"]) {
      assert.equal(to(`TO:<a@${domain}>`).address, `a@${domain}`, domain);
    }
    for (const domain of [
      "-b.example",
      "b-.example",
      "b..example",
      ".b.example",
      "b.example.",
      "b example",
      "b!.example",
    ]) {
      assert.equal(
        refusal(() => to(`TO:<a@${domain}>`)),
        "501 5.1.2 Syntax error in the domain of the mailbox",
        domain,
      );
    }
    assert.equal(
      refusal(() => from("FROM:<a@-b.example>")),
      "501 5.1.8 Syntax error in the domain of the mailbox",
    );
    assert.equal(to("TO:<a@[192.0.2.1]>").address, "a@[192.0.2.1]");
    assert.equal(
      refusal(() => to("TO:<a@[192.0.2.300]>")),
      "501 5.1.2 Syntax error in the domain of the mailbox",
    );
  });

  test("property: ASCII mailboxes are judged as the RFC grammar's regular expressions judge them", () => {
    // The parser checks ASCII local parts and domains with character tables, not regular expressions;
    // this reference is the grammar as patterns (dot-atoms of atext; labels of letters, digits and "_"
    // with "-" inside), applied to the same inputs, with and without SMTPUTF8.
    const atom = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/;
    const label = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?$/;
    const part = fc
      .array(
        fc.constantFrom("a", "Z", "0", "_", "-", ".", "+", "!", "~", "`", "(", " ", "\t", "\x7f", "\x01"),
        {
          maxLength: 8,
        },
      )
      .map((chars) => chars.join(""));
    fc.assert(
      fc.property(part, part, fc.boolean(), (local, domain, utf8) => {
        const mailbox = `${local}@${domain}`;
        const validLocal = local !== "" && local.split(".").every((a) => atom.test(a));
        const validDomain = domain !== "" && domain.split(".").every((l) => label.test(l));
        let verdict: string;
        try {
          verdict = to(`TO:<${mailbox}>`, utf8).address === mailbox ? "accepted" : "changed";
        } catch (error) {
          verdict = (error as Error).message;
        }
        if (validLocal && validDomain) assert.equal(verdict, "accepted", mailbox);
        else assert.notEqual(verdict, "accepted", mailbox);
      }),
      { numRuns: 3000 },
    );
  });

  test("a non-ASCII address needs SMTPUTF8 (553 5.6.7); with it, UTF-8 local parts and domains are valid", () => {
    assert.equal(
      refusal(() => to("TO:<pelé@example.com>")),
      "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter",
    );
    assert.equal(to("TO:<pelé@exämple.com>", true).address, "pelé@exämple.com");
    assert.equal(to('TO:<"pe lé"@example.com>', true).address, '"pe lé"@example.com');
    assert.equal(
      refusal(() => to('TO:<"pe lé"@example.com>')),
      "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter",
    );
  });

  test("with SMTPUTF8, controls, separators and bidirectional controls are refused", () => {
    for (const hazard of [
      "\u0085",
      "\u009b",
      "\u2028",
      "\u2029",
      "\u200e",
      "\u200f",
      "\u202a",
      "\u202e",
      "\u2066",
      "\u2069",
      "\u0007",
    ]) {
      assert.equal(
        refusal(() => to(`TO:<a${hazard}b@example.com>`, true)),
        "501 5.1.3 Syntax error: control or separator character in the address",
        hazard.codePointAt(0)?.toString(16),
      );
    }
    assert.equal(
      refusal(() => from("FROM:<a\u2028b@example.com>", true)),
      "501 5.1.7 Syntax error: control or separator character in the address",
    );
  });
});

describe("isAddressLiteral", () => {
  test("[IPv4] and [IPv6:...], the tag in any case; nothing else", () => {
    for (const literal of ["[192.0.2.1]", "[IPv6:2001:db8::1]", "[ipv6:::1]", "[IPV6:2001:db8::192.0.2.1]"]) {
      assert.equal(isAddressLiteral(literal), true, literal);
    }
    for (const literal of [
      "192.0.2.1",
      "[192.0.2.1",
      "192.0.2.1]",
      "[2001:db8::1]",
      "[IPv6:192.0.2.1]",
      "[IPv6:fe80::1%eth0]",
      "[IPv4:192.0.2.1]",
      "[x-tag:abc]",
      "[]",
      "[IPv6:]",
    ]) {
      assert.equal(isAddressLiteral(literal), false, literal);
    }
  });
});

describe("isAsciiText", () => {
  test("true for 7-bit text only", () => {
    assert.equal(isAsciiText(""), true);
    assert.equal(isAsciiText("\x00abc\x7f"), true);
    assert.equal(isAsciiText("abc\x80"), false);
    assert.equal(isAsciiText("é"), false);
  });
});

describe("parseEsmtpParams", () => {
  test("keyword[=value] items separated by spaces; keywords in upper case; no value is true", () => {
    assert.deepEqual(
      { ...parseEsmtpParams("size=10 SMTPUTF8  body=8BITMIME") },
      {
        SIZE: "10",
        SMTPUTF8: true,
        BODY: "8BITMIME",
      },
    );
    assert.deepEqual({ ...parseEsmtpParams("") }, {});
    assert.deepEqual({ ...parseEsmtpParams("X-1=a") }, { "X-1": "a" });
    assert.equal(Object.getPrototypeOf(parseEsmtpParams("SIZE=1")), null, "no inherited keys (__proto__...)");
  });

  test("a keyword starts with a letter or digit; a value is printable ASCII without '=' or space", () => {
    for (const item of ["-X=1", "X_Y=1", "=1", "X=", "X=a=b", "X=a\x01", "X=é"]) {
      assert.match(
        refusal(() => parseEsmtpParams(item)),
        /^501 5\.5\.4 Syntax error in parameter "/,
        item,
      );
    }
  });

  test("the refused item is echoed as printable ASCII, at most 40 characters", () => {
    assert.equal(
      refusal(() => parseEsmtpParams("X=é\u2028")),
      '501 5.5.4 Syntax error in parameter "X=??"',
    );
    assert.equal(
      refusal(() => parseEsmtpParams(`X=${"a".repeat(50)}\x01`)),
      `501 5.5.4 Syntax error in parameter "X=${"a".repeat(38)}"`,
    );
  });

  test("a keyword given twice is refused, whatever its case", () => {
    assert.equal(
      refusal(() => parseEsmtpParams("SIZE=1 size=2")),
      "501 5.5.4 Duplicate parameter SIZE",
    );
  });
});

describe("decodeXtext", () => {
  test("+XX stands for one octet (upper-case hex); other printable ASCII but '=' stands for itself", () => {
    assert.equal(decodeXtext("a+2Bb+3D", "ENVID", 100), "a+b=");
    assert.equal(decodeXtext("!~", "ENVID", 100), "!~");
    assert.equal(decodeXtext("+C3+A9", "ENVID", 100), "é", "octets are decoded as UTF-8");
  });

  test("refused: no value, bad escapes, '=', spaces, controls, invalid UTF-8, too long", () => {
    for (const value of [
      true,
      "",
      "+2b",
      "+2",
      "a+",
      "+GG",
      "a=b",
      "a b",
      "+0D",
      "+7F",
      "+1F",
      "+C3",
      "é",
      "abc",
    ] as const) {
      const maxLength = value === "abc" ? 2 : 100;
      assert.equal(
        refusal(() => decodeXtext(value, "ORCPT", maxLength)),
        "501 5.5.4 Error: invalid ORCPT value",
        String(value),
      );
    }
    assert.equal(decodeXtext("ab", "ORCPT", 2), "ab", "the limit itself is allowed");
  });
});
