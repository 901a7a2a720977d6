/**
 * receivedHeader (issue 16 item 8): the trace header of RFC 5321 4.4, in which what the client chose (its
 * HELO, its recipient) and what the DNS answered (the reverse name) cannot imitate the header's own
 * structure, carry control characters, or make a line longer than RFC 5322 allows.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createContext, type SessionContext } from "../../src/protocol/context.js";
import { receivedHeader } from "../../src/protocol/received.js";

const DATE = new Date(Date.UTC(2026, 10, 22, 3, 47, 20));
const STAMP = "Sun, 22 Nov 2026 03:47:20 +0000";
const OPTIONS = { hostname: "mx.example", id: "1ABCDEF0000001", date: DATE };

/** A context as the session leaves it at DATA: greeted with `helo`, one recipient. */
function context(changes: {
  helo?: string;
  heloCommand?: string;
  remoteIp?: string;
  remoteHost?: string;
  to?: string[];
  utf8?: boolean;
}): SessionContext {
  const ctx = createContext({
    localIp: "192.0.2.25",
    localPort: 25,
    remoteIp: changes.remoteIp ?? "192.0.2.1",
    remotePort: 40000,
    localResponse: "mx.example ESMTP ready",
    heloResponse: "mx.example at your service",
  });
  ctx.server.helo = changes.helo ?? "client.example";
  ctx.server.heloCommand = changes.heloCommand ?? "EHLO";
  if (changes.remoteHost !== undefined) ctx.server.remoteHost = changes.remoteHost;
  ctx.envelope.from = "a@x.example";
  ctx.envelope.to = changes.to ?? ["b@y.example", "c@y.example"];
  if (changes.utf8) ctx.envelope.encodingUtf8 = "utf8";
  return ctx;
}

/**
 * The header as one line, without its final CRLF: folding undone (RFC 5322 2.2.3) and the white space
 * between words one space, so that what it says can be checked wherever it was folded.
 */
function unfold(header: string): string {
  assert.ok(header.endsWith("\r\n"), "the header ends with CRLF");
  return header
    .slice(0, -2)
    .replace(/\r\n(?=[ \t])/g, "")
    .replace(/[ \t]+/g, " ");
}

/** What RFC 5322 2.1.1 and 2.2 ask of every header line, and what a terminal must never see. */
function assertWellFormed(header: string): void {
  const lines = header.slice(0, -2).split("\r\n");
  for (const [n, line] of lines.entries()) {
    assert.ok(Buffer.byteLength(line) <= 998, `line ${n} has ${Buffer.byteLength(line)} octets`);
    if (n > 0) assert.match(line, /^\t\S/, `line ${n} is a continuation`);
    // Printable ASCII and the folding TAB only: no control, no bare CR or LF (the split took every CRLF).
    assert.doesNotMatch(line, /[^\t\x20-\x7e]/, `line ${n} has a control or non-ASCII character`);
  }
  assert.match(lines[0] ?? "", /^Received: from /);
}

/** The client's part of the first clause: "from <word> (<TCP-info>)", nothing else. */
const FROM_CLAUSE =
  /^Received: from ([A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]+|\[[0-9A-Fa-f.:IPv]+\]) \(([^()\\]*)\) by mx\.example \(mailgate\) with /;

describe("receivedHeader: the format", () => {
  test("a plain session: from HELO (reverse name [address]), by, with, id; the date after the semicolon", () => {
    const ctx = context({ remoteHost: "client.example" });
    assert.equal(
      receivedHeader(ctx, OPTIONS),
      "Received: from client.example (client.example [192.0.2.1])\r\n" +
        `\tby mx.example (mailgate) with ESMTP id 1ABCDEF0000001;\r\n\t${STAMP}\r\n`,
    );
  });

  test("one recipient gets a for clause; an unresolved client is its address literal alone", () => {
    const ctx = context({ to: ["b@y.example"] });
    assert.equal(
      receivedHeader(ctx, OPTIONS),
      "Received: from client.example ([192.0.2.1])\r\n" +
        `\tby mx.example (mailgate) with ESMTP id 1ABCDEF0000001\r\n\tfor <b@y.example>;\r\n\t${STAMP}\r\n`,
    );
  });

  test("an IPv6 client is written as an RFC 5321 IPv6 address literal", () => {
    const ctx = context({ remoteIp: "2001:db8::7", remoteHost: "client.example" });
    assert.match(
      receivedHeader(ctx, OPTIONS),
      /^Received: from client\.example \(client\.example \[IPv6:2001:db8::7\]\)\r\n/,
    );
    const bare = context({ remoteIp: "::1" });
    assert.match(receivedHeader(bare, OPTIONS), /^Received: from client\.example \(\[IPv6:::1\]\)\r\n/);
  });

  test("a UNIX socket peer is localhost, without an address", () => {
    const ctx = context({ remoteIp: "" });
    assert.match(receivedHeader(ctx, OPTIONS), /^Received: from client\.example \(localhost\)\r\n/);
  });

  test("the protocol keyword follows HELO/EHLO/LHLO, SMTPUTF8, TLS and AUTH (RFC 3848, RFC 6531 3.7.3)", () => {
    const helo = context({ heloCommand: "HELO" });
    assert.match(receivedHeader(helo, OPTIONS), / with SMTP id /);
    const lmtp = context({ heloCommand: "LHLO" });
    assert.match(receivedHeader(lmtp, OPTIONS), / with LMTP id /);
    const lmtpUtf8 = context({ heloCommand: "LHLO", utf8: true });
    assert.match(receivedHeader(lmtpUtf8, OPTIONS), / with UTF8LMTP id /);
    const secured = context({ utf8: true });
    secured.server.encrypted = new Date();
    secured.server.authenticated = new Date();
    secured.server.tls = {
      protocol: "TLSv1.3",
      cipher: "TLS_AES_256_GCM_SHA384",
      cipherStandardName: "TLS_AES_256_GCM_SHA384",
      servername: undefined,
      peerCertificate: undefined,
      verified: false,
      verifyError: undefined,
    };
    assert.equal(
      receivedHeader(secured, OPTIONS),
      "Received: from client.example ([192.0.2.1])\r\n" +
        "\tby mx.example (mailgate) with UTF8SMTPSA id 1ABCDEF0000001\r\n" +
        `\t(version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384);\r\n\t${STAMP}\r\n`,
    );
  });

  test("without an id there is no id clause; without a date it is now", () => {
    const header = receivedHeader(context({}), { hostname: "mx.example" });
    assert.match(
      header,
      /^Received: from client\.example \(\[192\.0\.2\.1\]\)\r\n\tby mx\.example \(mailgate\) with ESMTP;\r\n\t/,
    );
    const stamp = /;\r\n\t(.+)\r\n$/.exec(header)?.[1] ?? "";
    assert.ok(Math.abs(Date.parse(stamp) - Date.now()) < 5000, stamp);
  });
});

describe("receivedHeader: the client cannot imitate the structure", () => {
  test("the spoofing HELO of issue 16 (reachable through XCLIENT HELO=, which allows spaces) is one neutral word", () => {
    const ctx = context({
      helo: "mail.bank.example (mail.bank.example [198.51.100.7])",
      remoteIp: "127.0.0.1",
    });
    const header = receivedHeader(ctx, OPTIONS);
    assertWellFormed(header);
    // 81 characters on one line: the TCP-info goes to the next (RFC 5322 2.1.1's 78).
    assert.equal(
      header,
      "Received: from mail.bank.example??mail.bank.example??198.51.100.7??\r\n\t([127.0.0.1])\r\n" +
        `\tby mx.example (mailgate) with ESMTP id 1ABCDEF0000001;\r\n\t${STAMP}\r\n`,
    );
    assert.match(unfold(header), FROM_CLAUSE);
  });

  test("without spaces too: parentheses, brackets, semicolons and other specials become ?", () => {
    for (const [helo, shown] of [
      [
        "mail.bank.example(mail.bank.example[198.51.100.7])",
        "mail.bank.example?mail.bank.example?198.51.100.7??",
      ],
      ["x;Sun,_1_Jan_2006", "x?Sun?_1_Jan_2006"],
      ['a"b\\c<d>e@f:g,h', "a?b?c?d?e?f?g?h"],
      ["[192.0.2.1](x)", "?192.0.2.1??x?"],
      ["[192.0.2.1", "?192.0.2.1"],
    ]) {
      const header = receivedHeader(context({ helo }), OPTIONS);
      assertWellFormed(header);
      assert.ok(unfold(header).startsWith(`Received: from ${shown} ([192.0.2.1]) by `), header);
      assert.match(unfold(header), FROM_CLAUSE);
    }
  });

  test("control characters (ESC, BS, DEL, TAB, CR, LF, C1) and non-ASCII in the HELO become ?", () => {
    const helo = "evil\x1b[2J\x08\x7f\tx\r\ny\u009b\u202e.example";
    const header = receivedHeader(context({ helo }), OPTIONS);
    assertWellFormed(header);
    assert.ok(
      unfold(header).startsWith("Received: from evil??2J???x??y??.example ([192.0.2.1]) by "),
      header,
    );
  });

  test("an address literal HELO is kept as it is; a domain with underscores too", () => {
    for (const helo of ["[192.0.2.1]", "[IPv6:2001:db8::1]", "my_pc.corp.example"]) {
      assert.ok(receivedHeader(context({ helo }), OPTIONS).startsWith(`Received: from ${helo} (`));
    }
  });

  test("the reverse DNS name (or an XCLIENT NAME) is neutralised the same way", () => {
    const ctx = context({ remoteHost: "evil.example [198.51.100.7]) (x", remoteIp: "192.0.2.1" });
    const header = receivedHeader(ctx, OPTIONS);
    assertWellFormed(header);
    assert.ok(
      unfold(header).startsWith(
        "Received: from client.example (evil.example??198.51.100.7????x [192.0.2.1]) by ",
      ),
      header,
    );
    assert.match(unfold(header), FROM_CLAUSE);
  });

  test("the by name and the id are written as atoms too", () => {
    const header = receivedHeader(context({}), { hostname: "mx (x)", id: "a;b c", date: DATE });
    assertWellFormed(header);
    assert.match(header, /\tby mx\?\?x\? \(mailgate\) with ESMTP id a\?b\?c;\r\n/);
  });

  test("an empty HELO (XCLIENT HELO=[UNAVAILABLE]) is written as unknown", () => {
    assert.match(receivedHeader(context({ helo: "" }), OPTIONS), /^Received: from unknown \(/);
  });
});

describe("receivedHeader: the for clause", () => {
  const forOf = (to: string, utf8 = false) =>
    /\r\n\tfor (<[^\r]*>);\r\n/.exec(receivedHeader(context({ to: [to], utf8 }), OPTIONS))?.[1] ?? null;

  test("plain addresses, address literals, Postmaster and SMTPUTF8 addresses are written", () => {
    assert.equal(forOf("b@y.example"), "<b@y.example>");
    assert.equal(forOf("first.last+tag@sub.y.example"), "<first.last+tag@sub.y.example>");
    assert.equal(forOf("b@[192.0.2.1]"), "<b@[192.0.2.1]>");
    assert.equal(forOf("Postmaster"), "<Postmaster>");
    assert.equal(forOf("j\u00f6rg@b\u00fccher.example", true), "<j\u00f6rg@b\u00fccher.example>");
  });

  test("a quoted local part, which may hold anything printable, leaves the clause out", () => {
    assert.equal(forOf('"x> (by evil.example [198.51.100.7]); Sun, 1 Jan 2006"@y.example'), null);
    assert.equal(forOf('"a b"@y.example'), null);
    const header = receivedHeader(context({ to: ['"x> (forged)"@y.example'] }), OPTIONS);
    assertWellFormed(header);
    assert.doesNotMatch(header, /forged/);
  });

  test("controls, bidi overrides, line separators, or non-ASCII without SMTPUTF8 leave it out", () => {
    for (const to of [
      "b\x1b@y.example",
      "b@y.example\r\nX-Evil: 1",
      "b\u202e@y.example",
      "b\u2028@y.example",
      "b\u0085@y.example",
    ]) {
      assert.equal(forOf(to, true), null, JSON.stringify(to));
    }
    assert.equal(forOf("j\u00f6rg@y.example", false), null);
  });

  test("the bounds: a path of 254 octets is named, 255 is not; both sides of the @ must be there and plain", () => {
    const local = "l".repeat(64);
    const domain = (octets: number) => `${"d".repeat(octets - 8)}.example`;
    const longest = `${local}@${domain(254 - 65)}`;
    assert.equal(Buffer.byteLength(longest), 254);
    assert.equal(forOf(longest), `<${longest}>`);
    assert.equal(forOf(`${local}@${domain(255 - 65)}`), null);
    for (const to of ["@y.example", "b@", "b@y!.example", "b@!y.example", "b@y.example!", "!b c@y.example"]) {
      assert.equal(forOf(to), null, to);
    }
    for (const to of ["b@\u00fc!", "b@!\u00fc", "\u00fc b@y.example", "b\u00a0@y.example"]) {
      assert.equal(forOf(to, true), null, JSON.stringify(to));
    }
    assert.equal(forOf("!#$%&'*+-/=?^_`{|}~.b@y-z_1.example"), "<!#$%&'*+-/=?^_`{|}~.b@y-z_1.example>");
  });

  test("with several recipients there is no for clause", () => {
    const header = receivedHeader(context({ to: ["b@y.example", "c@y.example"] }), OPTIONS);
    assert.doesNotMatch(header, /\tfor </);
  });
});

describe("receivedHeader: folding", () => {
  test("long parts fold between words, never inside one; every line stays within 998 octets", () => {
    const helo = `${"h".repeat(63)}.${"e".repeat(63)}.${"l".repeat(63)}.${"o".repeat(61)}`;
    const rdns = `${"r".repeat(63)}.${"d".repeat(63)}.${"n".repeat(63)}.${"s".repeat(61)}`;
    const ctx = context({
      helo,
      remoteHost: rdns,
      remoteIp: "2001:db8::7",
      to: [`${"b".repeat(64)}@${"y".repeat(180)}.example`],
    });
    const header = receivedHeader(ctx, OPTIONS);
    assertWellFormed(header);
    assert.ok(
      header.startsWith(
        `Received: from ${helo}\r\n\t(${rdns}\r\n\t[IPv6:2001:db8::7])\r\n\tby mx.example (mailgate)`,
      ),
      header,
    );
    assert.match(unfold(header), FROM_CLAUSE);
  });

  test("a HELO longer than a domain may be (a raised maxCommandLineLength allows it) is cut to 255 octets", () => {
    const header = receivedHeader(context({ helo: "a".repeat(5000) }), OPTIONS);
    assertWellFormed(header);
    assert.ok(header.startsWith(`Received: from ${"a".repeat(252)}...\r\n\t([192.0.2.1])\r\n`), header);
  });

  test("a HELO of exactly 255 octets is kept whole", () => {
    const header = receivedHeader(context({ helo: "a".repeat(255) }), OPTIONS);
    assert.ok(header.startsWith(`Received: from ${"a".repeat(255)}\r\n\t([192.0.2.1])\r\n`), header);
  });

  test("the date is the message's second: two dates a second apart are written apart", () => {
    const first = receivedHeader(context({}), { ...OPTIONS, date: DATE });
    const next = receivedHeader(context({}), { ...OPTIONS, date: new Date(DATE.getTime() + 1000) });
    const again = receivedHeader(context({}), { ...OPTIONS, date: new Date(DATE.getTime() + 999) });
    assert.match(first, /\sSun, 22 Nov 2026 03:47:20 \+0000\r\n$/);
    assert.match(next, /\sSun, 22 Nov 2026 03:47:21 \+0000\r\n$/);
    assert.match(again, /\sSun, 22 Nov 2026 03:47:20 \+0000\r\n$/);
  });
});
