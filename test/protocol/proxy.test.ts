/**
 * Tests of the PROXY protocol parser (HAProxy proxy-protocol.txt, v1 and v2): valid headers of every
 * family, each malformed v1 variant, v2 TLVs (SSL and its sub-TLVs, CRC32C right and wrong), early
 * decisions (invalid as soon as the bytes show it, incomplete for every prefix of a valid header), exact
 * header lengths, and fast-check properties: no input throws or claims bytes it does not have.
 * v2 headers are built here with an independent bitwise CRC32C, so the parser's table is checked too.
 */
import assert from "node:assert/strict";
import { SocketAddress } from "node:net";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  crc32c,
  PP2_CLIENT,
  PP2_SUBTYPE_SSL,
  PP2_TYPE,
  PROXY_V1_MAX_LENGTH,
  PROXY_V2_DEFAULT_MAX_LENGTH,
  PROXY_V2_SIGNATURE,
  type ProxyInfo,
  type ProxyParse,
  type ProxyParseOptions,
  parseProxyHeader,
} from "../../src/protocol/proxy.js";

const bytes = (text: string): Buffer => Buffer.from(text, "latin1");
const toBuffer = (input: Buffer | string): Buffer => (typeof input === "string" ? bytes(input) : input);

function parse(input: Buffer | string, options?: ProxyParseOptions): ProxyParse {
  return parseProxyHeader(toBuffer(input), options);
}

function parseDone(input: Buffer | string, options?: ProxyParseOptions): { info: ProxyInfo; length: number } {
  const result = parse(input, options);
  assert.equal(result.kind, "done", `expected done, got ${JSON.stringify(result)}`);
  return result as { info: ProxyInfo; length: number };
}

function assertInvalid(input: Buffer | string, reason?: RegExp, options?: ProxyParseOptions): void {
  const result = parse(input, options);
  assert.equal(
    result.kind,
    "invalid",
    `expected invalid for ${JSON.stringify(toBuffer(input).toString("latin1"))}`,
  );
  if (reason && result.kind === "invalid") assert.match(result.reason, reason);
}

/** Every strict prefix of a valid header (the empty one included) is "incomplete". */
function assertPrefixesIncomplete(header: Buffer, options?: ProxyParseOptions): void {
  for (let n = 0; n < header.length; n++) {
    const result = parseProxyHeader(header.subarray(0, n), options);
    assert.deepEqual(result, { kind: "incomplete" }, `prefix of ${n}/${header.length} bytes`);
  }
}

/** Asserts the header is done with exactly its own length and that the bytes after it are untouched. */
function assertHeaderThenData(header: Buffer, options?: ProxyParseOptions): ProxyInfo {
  const after = bytes("EHLO client.example\r\nMAIL FROM:<a@b>\r\n\x00\xff");
  const input = Buffer.concat([header, after]);
  const snapshot = Buffer.from(input);
  const { info, length } = parseDone(input, options);
  assert.equal(length, header.length);
  assert.deepEqual(input.subarray(length), after);
  assert.deepEqual(input, snapshot, "the input is not modified");
  assert.equal(parseDone(header, options).length, header.length, "also done with nothing after it");
  return info;
}

// ---------------------------------------------------------------------------------------------------
// v2 builders, with a CRC32C independent of the parser's (bit by bit, no table)

function crc32cBitwise(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}

const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};

interface Tlv {
  type: number;
  value: Buffer;
}

function tlv(type: number, value: Buffer | string): Tlv {
  return { type, value: typeof value === "string" ? Buffer.from(value, "utf8") : value };
}

const encodeTlv = ({ type, value }: Tlv): Buffer =>
  Buffer.concat([Buffer.from([type]), u16(value.length), value]);

interface V2Spec {
  /** Version and command byte (default 0x21: v2 PROXY). */
  verCmd?: number;
  /** Family and transport byte (default 0x11: TCP over IPv4). */
  fam?: number;
  /** The address block (default: the inet4 one below). */
  block?: Buffer;
  tlvs?: Tlv[];
  /** Append a CRC32C TLV (after the others unless crcFirst), with the right or a wrong value. */
  crc?: "right" | "wrong";
  crcFirst?: boolean;
  /** Added to the length field (to declare more or fewer bytes than the body has). */
  lengthDelta?: number;
}

function inet4(src: number[], dst: number[], sport: number, dport: number): Buffer {
  return Buffer.concat([Buffer.from(src), Buffer.from(dst), u16(sport), u16(dport)]);
}

function inet6(src: string, dst: string, sport: number, dport: number): Buffer {
  return Buffer.concat([ipv6Bytes(src), ipv6Bytes(dst), u16(sport), u16(dport)]);
}

/** 16 bytes of an IPv6 address written with all eight groups. */
function ipv6Bytes(full: string): Buffer {
  const groups = full.split(":");
  assert.equal(groups.length, 8);
  return Buffer.concat(groups.map((g) => u16(Number.parseInt(g, 16))));
}

function unixPaths(src: Buffer | string, dst: Buffer | string): Buffer {
  const field = (path: Buffer | string): Buffer => {
    const b = Buffer.alloc(108);
    toBuffer(path).copy(b);
    return b;
  };
  return Buffer.concat([field(src), field(dst)]);
}

const DEFAULT_BLOCK = inet4([192, 0, 2, 1], [198, 51, 100, 7], 56324, 25);

function v2(spec: V2Spec = {}): Buffer {
  const tlvs = spec.tlvs ?? [];
  const crcTlv = spec.crc ? [encodeTlv(tlv(PP2_TYPE.CRC32C, Buffer.alloc(4)))] : [];
  const parts = tlvs.map(encodeTlv);
  const tlvBytes = spec.crcFirst ? [...crcTlv, ...parts] : [...parts, ...crcTlv];
  const body = Buffer.concat([spec.block ?? DEFAULT_BLOCK, ...tlvBytes]);
  const header = Buffer.concat([
    PROXY_V2_SIGNATURE,
    Buffer.from([spec.verCmd ?? 0x21, spec.fam ?? 0x11]),
    u16(body.length + (spec.lengthDelta ?? 0)),
    body,
  ]);
  if (spec.crc) {
    const at = spec.crcFirst ? 16 + (spec.block ?? DEFAULT_BLOCK).length + 3 : header.length - 4;
    const crc = crc32cBitwise(header); // the CRC field is still zero here
    header.writeUInt32BE(spec.crc === "right" ? crc : (crc ^ 0x00010000) >>> 0, at);
  }
  return header;
}

function sslValue(client: number, verify: number, subs: Tlv[]): Buffer {
  const fixed = Buffer.alloc(5);
  fixed[0] = client;
  fixed.writeUInt32BE(verify, 1);
  return Buffer.concat([fixed, ...subs.map(encodeTlv)]);
}

// ---------------------------------------------------------------------------------------------------

describe("CRC32C", () => {
  test("known vectors (RFC 3720 B.4 and the check value)", () => {
    assert.equal(crc32c(bytes("123456789")), 0xe3069283);
    assert.equal(crc32c(Buffer.alloc(32, 0x00)), 0x8a9136aa);
    assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
    assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e);
    assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i))), 0x113fdb5c);
    assert.equal(crc32c(Buffer.alloc(0)), 0);
    assert.equal(crc32cBitwise(bytes("123456789")), 0xe3069283, "the tests' reference agrees");
  });

  test("matches the bitwise reference and chains", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(300), (data, cut) => {
        const at = Math.min(cut, data.length);
        assert.equal(crc32c(data), crc32cBitwise(data));
        assert.equal(crc32c(data.subarray(at), crc32c(data.subarray(0, at))), crc32c(data));
      }),
      { numRuns: 300 },
    );
  });
});

describe("detection", () => {
  test("anything but a v1 or v2 start is invalid at its first differing byte", () => {
    for (const start of [
      "G",
      "EHLO",
      "HELO x\r\n",
      "\x16\x03\x01",
      "proxy ",
      "PROXX",
      "PROXY\r\n",
      " PROXY",
    ]) {
      assertInvalid(start, /not a PROXY protocol header/);
    }
    assertInvalid(Buffer.concat([PROXY_V2_SIGNATURE.subarray(0, 7), bytes("X")]));
  });

  test("the empty input and prefixes of both signatures are incomplete", () => {
    assertPrefixesIncomplete(bytes("PROXY "));
    assertPrefixesIncomplete(PROXY_V2_SIGNATURE);
    assert.deepEqual(parse("PROXY "), { kind: "incomplete" });
    assert.deepEqual(parse(PROXY_V2_SIGNATURE), { kind: "incomplete" });
  });

  test("a bad maxV2Length option is a programming error (RangeError)", () => {
    for (const maxV2Length of [0, 15, 1.5, Number.NaN, 65552, Number.POSITIVE_INFINITY]) {
      assert.throws(() => parse("PROXY ", { maxV2Length }), RangeError);
    }
    assert.doesNotThrow(() => parse("PROXY ", { maxV2Length: 16 }));
    assert.doesNotThrow(() => parse("PROXY ", { maxV2Length: 65551 }));
  });
});

describe("v1", () => {
  test("TCP4", () => {
    const header = bytes("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
    const info = assertHeaderThenData(header);
    assert.deepEqual(info, {
      version: 1,
      command: "PROXY",
      family: "TCP4",
      source: { address: "192.168.0.1", port: 56324 },
      destination: { address: "192.168.0.11", port: 443 },
      tlvs: { raw: [] },
    });
    assertPrefixesIncomplete(header);
  });

  test("TCP4 extremes: ports 0 and 65535, the longest line (56 bytes)", () => {
    const header = bytes("PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n");
    const info = assertHeaderThenData(header);
    assert.deepEqual(info.source, { address: "255.255.255.255", port: 65535 });
    assert.deepEqual(info.destination, { address: "0.0.0.0", port: 0 });
  });

  test("TCP6, addresses in canonical form (as node:net prints them)", () => {
    const header = bytes("PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0001 ::FFFF:192.0.2.1 4000 25\r\n");
    const info = assertHeaderThenData(header);
    assert.deepEqual(info, {
      version: 1,
      command: "PROXY",
      family: "TCP6",
      source: { address: "2001:db8::1", port: 4000 },
      destination: { address: "::ffff:192.0.2.1", port: 25 },
      tlvs: { raw: [] },
    });
    assertPrefixesIncomplete(header);
  });

  test("TCP6 longest line (104 bytes)", () => {
    const max = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    const header = bytes(`PROXY TCP6 ${max} ${max} 65535 65535\r\n`);
    assert.equal(header.length, 104);
    assert.equal(assertHeaderThenData(header).source?.address, max);
    assertPrefixesIncomplete(header);
  });

  test("UNKNOWN, short and long forms: keep the real peer", () => {
    const max = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    const longest = bytes(`PROXY UNKNOWN ${max} ${max} 65535 65535\r\n`);
    assert.equal(longest.length, PROXY_V1_MAX_LENGTH);
    for (const header of [
      bytes("PROXY UNKNOWN\r\n"),
      bytes("PROXY UNKNOWN \r\n"),
      bytes("PROXY UNKNOWN 192.0.2.1 192.0.2.2 1 2\r\n"),
      bytes("PROXY UNKNOWN anything at all, even \x00 or \xff\r\n"),
      longest,
    ]) {
      const info = assertHeaderThenData(header);
      assert.deepEqual(info, { version: 1, command: "LOCAL", family: "UNSPEC", tlvs: { raw: [] } });
      assertPrefixesIncomplete(header);
    }
  });

  const malformed: [string, string, RegExp?][] = [
    // length and line end
    ["too long (110 bytes)", `PROXY UNKNOWN ${"x".repeat(94)}\r\n`, /longer than 107|no CRLF/],
    ["no CRLF within 107 bytes", `PROXY UNKNOWN ${"x".repeat(93)}`, /no CRLF within 107/],
    ["CR as the 107th byte", `PROXY UNKNOWN ${"x".repeat(92)}\r\n`, /longer than 107/],
    ["bare LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", /bare LF/],
    ["bare CR", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", /bare CR/],
    ["LF CR", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r", /bare LF/],
    ["bare LF after UNKNOWN", "PROXY UNKNOWN x\ny\r\n", /bare LF/],
    // protocol field
    ["unknown protocol", "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", /unknown protocol/],
    ["lowercase protocol", "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", /unknown protocol/],
    ["UNKNOWN glued to more", "PROXY UNKNOWNX\r\n", /unknown protocol/],
    ["no protocol", "PROXY \r\n", /unknown protocol/],
    // addresses
    ["IPv4 octet out of range", "PROXY TCP4 256.1.1.1 5.6.7.8 1 2\r\n", /bad IPv4/],
    ["IPv4 leading zero", "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", /bad IPv4/],
    ["IPv4 three parts", "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", /bad IPv4/],
    ["IPv4 hostname", "PROXY TCP4 localhost 5.6.7.8 1 2\r\n", /bad IPv4/],
    ["bad IPv6", "PROXY TCP6 1::2::3 ::1 1 2\r\n", /bad IPv6/],
    ["IPv6 with 9 groups", "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", /bad IPv6/],
    ["IPv6 zone index", "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", /bad IPv6/],
    ["IPv6 address for TCP4", "PROXY TCP4 ::1 5.6.7.8 1 2\r\n", /IPv6 address for TCP4/],
    ["IPv6 destination for TCP4", "PROXY TCP4 1.2.3.4 ::1 1 2\r\n", /IPv6 address for TCP4/],
    ["IPv4 address for TCP6", "PROXY TCP6 1.2.3.4 ::1 1 2\r\n", /IPv4 address for TCP6/],
    // ports
    ["port out of range", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", /port out of range/],
    ["port with leading zero", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", /leading zero/],
    ["port 00", "PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", /leading zero/],
    ["negative port", "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", /bad port/],
    ["hex port", "PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n", /bad port/],
    ["port with plus", "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", /bad port/],
    ["six-digit port", "PROXY TCP4 1.2.3.4 5.6.7.8 100000 2\r\n", /bad port/],
    // spaces and fields
    ["two spaces after PROXY", "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", /unknown protocol/],
    ["two spaces between addresses", "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", /extra space|bad/],
    ["two spaces before a port", "PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", /extra space|bad/],
    ["trailing space", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", /too many fields|extra space/],
    ["tab separator", "PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n", /unknown protocol/],
    ["missing destination port", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", /missing fields/],
    ["addresses only", "PROXY TCP4 1.2.3.4 5.6.7.8\r\n", /missing fields/],
    ["protocol only", "PROXY TCP4\r\n", /missing fields/],
    ["seven fields", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", /too many fields/],
  ];
  for (const [name, line, reason] of malformed) {
    test(`malformed: ${name}`, () => assertInvalid(line, reason));
  }

  test("invalid as soon as a field cannot be completed, without waiting for the CRLF", () => {
    for (const partial of [
      "PROXY X",
      "PROXY TCP44",
      "PROXY UNKNOWN_",
      "PROXY TCP4 1.2.3.4:",
      "PROXY TCP4 ::",
      "PROXY TCP4 1.2.3.4.5.6.7.8.9",
      "PROXY TCP6 1.2.3.4 g",
      "PROXY TCP6 ::1 ::1 123456",
      "PROXY TCP4 1.2.3.4 5.6.7.8 65536",
      "PROXY TCP4 1.2.3.4 5.6.7.8 01",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ",
      "PROXY TCP4  ",
      "PROXY TCP4 1.2.3 5",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1\r", // a CR ends the line: its fields are checked before the LF
    ]) {
      assert.equal(parse(partial).kind, "invalid", partial);
    }
    // ... but what may still become valid waits
    for (const partial of [
      "PROXY TCP4 1.2.3.4 5.6.7.8 0",
      "PROXY TCP6 ::ffff:1.2.3.4",
      "PROXY UNK",
      "PROXY UNKNOWN",
    ]) {
      assert.deepEqual(parse(partial), { kind: "incomplete" }, partial);
    }
    assert.deepEqual(
      parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"),
      { kind: "incomplete" },
      "only the LF is missing",
    );
  });

  test("a v1 line is never longer than 107 bytes whatever the maxV2Length", () => {
    assertInvalid(`PROXY UNKNOWN ${"x".repeat(93)}`, /107/, { maxV2Length: 65551 });
    assert.deepEqual(parse(`PROXY UNKNOWN ${"x".repeat(92)}`), { kind: "incomplete" });
  });
});

describe("v2", () => {
  test("PROXY TCP over IPv4", () => {
    const header = v2();
    assert.equal(header.length, 28);
    const info = assertHeaderThenData(header);
    assert.deepEqual(info, {
      version: 2,
      command: "PROXY",
      family: "TCP4",
      source: { address: "192.0.2.1", port: 56324 },
      destination: { address: "198.51.100.7", port: 25 },
      tlvs: { raw: [] },
    });
    assertPrefixesIncomplete(header);
  });

  test("the HAProxy capture from the spec's era (netcat dump) parses", () => {
    const capture = Buffer.from("0d0a0d0a000d0a515549540a2111000cac130001ac130003a6520050", "hex");
    const info = assertHeaderThenData(capture);
    assert.deepEqual(info.source, { address: "172.19.0.1", port: 42578 });
    assert.deepEqual(info.destination, { address: "172.19.0.3", port: 80 });
  });

  test("PROXY TCP over IPv6, canonical addresses (RFC 5952, as node:net prints them)", () => {
    const cases: [string, string][] = [
      ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
      ["0000:0000:0000:0000:0000:0000:0000:0000", "::"],
      ["0000:0000:0000:0000:0000:0000:0000:0001", "::1"],
      ["0000:0000:0000:0000:0000:ffff:c000:0201", "::ffff:192.0.2.1"],
      ["2001:0db8:0000:0001:0001:0001:0001:0001", "2001:db8:0:1:1:1:1:1"],
      ["2001:0000:0000:0001:0000:0000:0000:0001", "2001:0:0:1::1"],
      ["2001:0db8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"],
      ["fe80:0000:0000:0000:abcd:ef01:2345:6789", "fe80::abcd:ef01:2345:6789"],
    ];
    for (const [full, canonical] of cases) {
      const header = v2({
        fam: 0x21,
        block: inet6(full, "2001:0db8:0000:0000:0000:0000:0000:0019", 1234, 25),
      });
      const info = assertHeaderThenData(header);
      assert.equal(info.family, "TCP6");
      assert.deepEqual(info.source, { address: canonical, port: 1234 });
      assert.deepEqual(info.destination, { address: "2001:db8::19", port: 25 });
    }
    assertPrefixesIncomplete(v2({ fam: 0x21, block: inet6(cases[0]?.[0] ?? "", cases[0]?.[0] ?? "", 1, 2) }));
  });

  test("PROXY over a unix stream socket", () => {
    const header = v2({ fam: 0x31, block: unixPaths("/run/haproxy/client.sock", "/var/run/mailgate.sock") });
    assert.equal(header.length, 16 + 216);
    const info = assertHeaderThenData(header);
    assert.deepEqual(info, {
      version: 2,
      command: "PROXY",
      family: "UNIX",
      source: { address: "/run/haproxy/client.sock", port: 0 },
      destination: { address: "/var/run/mailgate.sock", port: 0 },
      tlvs: { raw: [] },
    });
    const abstract = parseDone(
      v2({ fam: 0x31, block: unixPaths(bytes("\0abstract"), "x".repeat(108)) }),
    ).info;
    assert.equal(abstract.source?.address, "\0abstract");
    assert.equal(abstract.destination?.address, "x".repeat(108), "a full 108-byte path has no NUL");
    assertPrefixesIncomplete(header);
  });

  test("LOCAL: keep the real peer, whatever the family and address block say", () => {
    const bare = v2({ verCmd: 0x20, fam: 0x00, block: Buffer.alloc(0) });
    assert.equal(bare.length, 16);
    const expected = { version: 2, command: "LOCAL", family: "UNSPEC", tlvs: { raw: [] } };
    assert.deepEqual(assertHeaderThenData(bare), expected);
    assertPrefixesIncomplete(bare);
    // LOCAL with an address block: the addresses are ignored, TLVs after it still decoded
    const withBlock = parseDone(v2({ verCmd: 0x20, tlvs: [tlv(PP2_TYPE.AUTHORITY, "mx.example")] })).info;
    assert.deepEqual(withBlock, {
      ...expected,
      tlvs: { authority: "mx.example", raw: [tlv(2, "mx.example")] },
    });
    // LOCAL declaring IPv4 with no address block at all is still accepted
    assert.deepEqual(parseDone(v2({ verCmd: 0x20, fam: 0x11, block: Buffer.alloc(0) })).info, expected);
    assert.deepEqual(parseDone(v2({ verCmd: 0x20, fam: 0x21, block: Buffer.alloc(5) })).info, expected);
  });

  test("PROXY with an UNSPEC family or transport: no addresses, the block is skipped", () => {
    const unspec = parseDone(v2({ fam: 0x00, block: Buffer.alloc(0), tlvs: [tlv(PP2_TYPE.ALPN, "smtp")] }));
    assert.deepEqual(unspec.info, {
      version: 2,
      command: "PROXY",
      family: "UNSPEC",
      tlvs: { alpn: "smtp", raw: [tlv(1, "smtp")] },
    });
    for (const fam of [0x10, 0x20, 0x30, 0x01]) {
      const block = fam === 0x01 ? Buffer.alloc(0) : Buffer.alloc([0, 12, 36, 216][fam >> 4] ?? 0, 7);
      const info = parseDone(v2({ fam, block, tlvs: [tlv(PP2_TYPE.NETNS, "blue")] })).info;
      assert.equal(info.family, "UNSPEC", `fam 0x${fam.toString(16)}`);
      assert.equal(info.source, undefined);
      assert.equal(info.tlvs.netns, "blue", "the TLVs are found after the family's block");
    }
  });

  test("version, command, family and transport are checked as soon as their byte arrives", () => {
    const start = (verCmd: number, fam?: number): Buffer =>
      Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from(fam === undefined ? [verCmd] : [verCmd, fam])]);
    assertInvalid(start(0x11), /version/);
    assertInvalid(start(0x31), /version/);
    assertInvalid(start(0x01), /version/);
    assertInvalid(start(0x22), /command/);
    assertInvalid(start(0x2f), /command/);
    assertInvalid(start(0x21, 0x41), /family/);
    assertInvalid(start(0x21, 0xf1), /family/);
    assertInvalid(start(0x21, 0x13), /transport/);
    assertInvalid(start(0x20, 0x03), /transport/);
    for (const fam of [0x02, 0x12, 0x22, 0x32]) assertInvalid(start(0x21, fam), /DGRAM/);
    assertInvalid(start(0x20, 0x12), /DGRAM/);
    assert.deepEqual(parse(start(0x21)), { kind: "incomplete" });
    assert.deepEqual(parse(start(0x21, 0x11)), { kind: "incomplete" });
  });

  test("the length must cover the family's address block", () => {
    assertInvalid(v2({ block: Buffer.alloc(11) }), /address block shorter/);
    assertInvalid(v2({ fam: 0x21, block: Buffer.alloc(35) }), /address block shorter/);
    assertInvalid(v2({ fam: 0x31, block: Buffer.alloc(215) }), /address block shorter/);
    assertInvalid(v2({ block: Buffer.alloc(0) }), /address block shorter/);
  });

  test("oversized headers are invalid as soon as the length field shows it", () => {
    const big = v2({ tlvs: [tlv(0xe0, Buffer.alloc(PROXY_V2_DEFAULT_MAX_LENGTH - 28 - 3 + 1))] });
    assert.equal(big.length, PROXY_V2_DEFAULT_MAX_LENGTH + 1);
    assertInvalid(big.subarray(0, 16), /oversized/);
    assertInvalid(big, /oversized/);
    const fits = v2({ tlvs: [tlv(0xe0, Buffer.alloc(PROXY_V2_DEFAULT_MAX_LENGTH - 28 - 3))] });
    assert.equal(parseDone(fits).length, PROXY_V2_DEFAULT_MAX_LENGTH);
    assert.equal(parseDone(big, { maxV2Length: 65551 }).length, big.length);
    assertInvalid(v2(), /oversized/, { maxV2Length: 27 });
    assert.equal(parseDone(v2(), { maxV2Length: 28 }).length, 28);
    const max = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
    assertInvalid(max, /oversized/);
    assert.deepEqual(parse(max, { maxV2Length: 65551 }), { kind: "incomplete" });
  });

  test("TLVs: ALPN, AUTHORITY, UNIQUE_ID, NETNS, NOOP and unknown types", () => {
    const uniqueId = Buffer.from(Array.from({ length: 128 }, (_, i) => i));
    const tlvs = [
      tlv(PP2_TYPE.ALPN, "h2"),
      tlv(PP2_TYPE.NOOP, Buffer.alloc(0)),
      tlv(PP2_TYPE.AUTHORITY, "mx.exämple.org"),
      tlv(PP2_TYPE.UNIQUE_ID, uniqueId),
      tlv(0xe5, Buffer.from([1, 2, 3])),
      tlv(PP2_TYPE.NETNS, "blue"),
      tlv(0xff, Buffer.alloc(0)),
      tlv(PP2_TYPE.NOOP, Buffer.alloc(5, 0xaa)),
    ];
    const header = v2({ tlvs });
    const info = assertHeaderThenData(header);
    assert.deepEqual(info.tlvs, {
      alpn: "h2",
      authority: "mx.exämple.org",
      uniqueId,
      netns: "blue",
      raw: tlvs,
    });
    assert.equal(info.source?.address, "192.0.2.1", "the addresses are still there");
    assertPrefixesIncomplete(header);
  });

  test("TLV values are copies, not views of the caller's buffer", () => {
    const header = v2({ tlvs: [tlv(PP2_TYPE.UNIQUE_ID, "abc"), tlv(0xe0, "xyz")] });
    const { info } = parseDone(header);
    header.fill(0);
    assert.equal(info.tlvs.uniqueId?.toString(), "abc");
    assert.equal(info.tlvs.raw[1]?.value.toString(), "xyz");
  });

  test("SSL TLV with its sub-TLVs", () => {
    const ssl = sslValue(PP2_CLIENT.SSL | PP2_CLIENT.CERT_CONN | PP2_CLIENT.CERT_SESS, 0, [
      tlv(PP2_SUBTYPE_SSL.VERSION, "TLSv1.3"),
      tlv(PP2_SUBTYPE_SSL.CN, "Zoë Client"),
      tlv(PP2_SUBTYPE_SSL.CIPHER, "TLS_AES_256_GCM_SHA384"),
      tlv(PP2_SUBTYPE_SSL.SIG_ALG, "RSA-SHA256"),
      tlv(PP2_SUBTYPE_SSL.KEY_ALG, "RSA2048"),
      tlv(0x2f, "an unknown sub-TLV is skipped"),
    ]);
    const header = v2({
      fam: 0x21,
      block: inet6("0:0:0:0:0:0:0:1", "0:0:0:0:0:0:0:2", 1, 2),
      tlvs: [tlv(PP2_TYPE.SSL, ssl)],
    });
    const info = assertHeaderThenData(header);
    assert.deepEqual(info.tlvs.ssl, {
      client: 7,
      verify: 0,
      version: "TLSv1.3",
      cn: "Zoë Client",
      cipher: "TLS_AES_256_GCM_SHA384",
      sigAlg: "RSA-SHA256",
      keyAlg: "RSA2048",
    });
    assert.deepEqual(info.tlvs.raw, [tlv(PP2_TYPE.SSL, ssl)]);
    assertPrefixesIncomplete(header);
    // no certificate, verification failed, no sub-TLVs at all
    const bare = parseDone(v2({ tlvs: [tlv(PP2_TYPE.SSL, sslValue(PP2_CLIENT.SSL, 0xdeadbeef, []))] })).info;
    assert.deepEqual(bare.tlvs.ssl, { client: 1, verify: 0xdeadbeef });
  });

  test("malformed TLVs are invalid", () => {
    const cases: [string, Buffer, RegExp][] = [
      ["a TLV running past the header", v2({ tlvs: [tlv(0xe0, "abc")], lengthDelta: -1 }), /runs past/],
      [
        "a TLV header cut short (2 bytes)",
        v2({ block: Buffer.concat([DEFAULT_BLOCK, Buffer.from([0xe0, 0])]) }),
        /truncated TLV/,
      ],
      [
        "a TLV header cut short (1 byte)",
        v2({ block: Buffer.concat([DEFAULT_BLOCK, Buffer.from([0])]) }),
        /truncated TLV/,
      ],
      ["an SSL TLV under 5 bytes", v2({ tlvs: [tlv(PP2_TYPE.SSL, Buffer.alloc(4))] }), /SSL TLV shorter/],
      [
        "an SSL sub-TLV running past the SSL TLV",
        v2({ tlvs: [tlv(PP2_TYPE.SSL, Buffer.concat([sslValue(1, 0, []), Buffer.from([0x21, 0, 9, 65])]))] }),
        /runs past the SSL TLV/,
      ],
      [
        "an SSL sub-TLV header cut short",
        v2({ tlvs: [tlv(PP2_TYPE.SSL, Buffer.concat([sslValue(1, 0, []), Buffer.from([0x21, 0])]))] }),
        /truncated SSL sub-TLV/,
      ],
      [
        "a duplicate SSL sub-TLV",
        v2({ tlvs: [tlv(PP2_TYPE.SSL, sslValue(1, 0, [tlv(0x22, "a"), tlv(0x22, "b")]))] }),
        /duplicate SSL sub-TLV/,
      ],
      ["a UNIQUE_ID over 128 bytes", v2({ tlvs: [tlv(PP2_TYPE.UNIQUE_ID, Buffer.alloc(129))] }), /UNIQUE_ID/],
      ["a CRC32C TLV of 3 bytes", v2({ tlvs: [tlv(PP2_TYPE.CRC32C, Buffer.alloc(3))] }), /not 4 bytes/],
      ["a CRC32C TLV of 5 bytes", v2({ tlvs: [tlv(PP2_TYPE.CRC32C, Buffer.alloc(5))] }), /not 4 bytes/],
      ["two AUTHORITY TLVs", v2({ tlvs: [tlv(2, "a"), tlv(2, "b")] }), /duplicate AUTHORITY/],
      ["two ALPN TLVs", v2({ tlvs: [tlv(1, "a"), tlv(1, "b")] }), /duplicate ALPN/],
      ["two NETNS TLVs", v2({ tlvs: [tlv(0x30, "a"), tlv(0x30, "b")] }), /duplicate NETNS/],
      ["two UNIQUE_ID TLVs", v2({ tlvs: [tlv(5, "a"), tlv(5, "b")] }), /duplicate UNIQUE_ID/],
      [
        "two SSL TLVs",
        v2({ tlvs: [tlv(0x20, sslValue(0, 0, [])), tlv(0x20, sslValue(0, 0, []))] }),
        /duplicate SSL TLV/,
      ],
      [
        "two CRC32C TLVs",
        v2({ tlvs: [tlv(PP2_TYPE.CRC32C, Buffer.alloc(4))], crc: "right" }),
        /duplicate CRC32C/,
      ],
    ];
    for (const [name, header, reason] of cases) {
      const result = parse(header);
      assert.equal(result.kind, "invalid", name);
      if (result.kind === "invalid") assert.match(result.reason, reason, name);
    }
  });

  test("a TLV running past the declared length is invalid even if more bytes follow", () => {
    // The next bytes (SMTP data) would complete the TLV, but the header's length says where it ends.
    const header = v2({ tlvs: [tlv(0xe0, "abcd")], lengthDelta: -2 });
    assertInvalid(Buffer.concat([header, bytes("EHLO x\r\n")]), /runs past/);
  });

  test("CRC32C: a right checksum is accepted, wherever the TLV is", () => {
    const tlvs = [tlv(PP2_TYPE.AUTHORITY, "mx.example"), tlv(0xe1, "x")];
    for (const crcFirst of [false, true]) {
      const header = v2({
        fam: 0x21,
        block: inet6("2001:db8:0:0:0:0:0:1", "2001:db8:0:0:0:0:0:2", 1, 25),
        tlvs,
        crc: "right",
        crcFirst,
      });
      const info = assertHeaderThenData(header);
      assert.equal(info.tlvs.crc32cValid, true);
      assert.equal(info.tlvs.authority, "mx.example");
      assert.equal(info.tlvs.raw.length, 3, "the CRC32C TLV is in raw too");
      assertPrefixesIncomplete(header);
    }
    const local = v2({ verCmd: 0x20, fam: 0x00, block: Buffer.alloc(0), crc: "right" });
    assert.equal(parseDone(local).info.tlvs.crc32cValid, true);
  });

  test("CRC32C: a wrong checksum, or any changed bit under it, is invalid", () => {
    assertInvalid(v2({ crc: "wrong" }), /CRC32C mismatch/);
    assertInvalid(v2({ crc: "wrong", crcFirst: true, tlvs: [tlv(2, "a")] }), /CRC32C mismatch/);
    const header = v2({ tlvs: [tlv(PP2_TYPE.AUTHORITY, "mx.example")], crc: "right" });
    parseDone(header);
    // Flip every bit of the addresses, ports and TLV values (not the bytes that frame the header).
    const framing = new Set([12, 13, 14, 15, 28, 29, 30, 41, 42, 43]);
    for (let at = 16; at < header.length - 4; at++) {
      if (framing.has(at)) continue;
      for (let bit = 0; bit < 8; bit++) {
        const changed = Buffer.from(header);
        changed[at] = (changed[at] ?? 0) ^ (1 << bit);
        assertInvalid(changed, /CRC32C mismatch/);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// Properties

/** The invariants every answer keeps, whatever the input. */
function checkInvariants(input: Buffer, maxV2Length: number): ProxyParse {
  const snapshot = Buffer.from(input);
  const result = parseProxyHeader(input, { maxV2Length });
  assert.deepEqual(input, snapshot, "the input is not modified");
  switch (result.kind) {
    case "incomplete":
      assert.ok(input.length < Math.max(PROXY_V1_MAX_LENGTH, maxV2Length), "the parser bounds the buffer");
      break;
    case "done":
      assert.ok(Number.isInteger(result.length) && result.length > 0 && result.length <= input.length);
      assert.ok(result.length <= Math.max(PROXY_V1_MAX_LENGTH, maxV2Length));
      break;
    case "invalid":
      assert.equal(typeof result.reason, "string");
      assert.ok(result.reason.length > 0);
      break;
    default:
      assert.fail(`unexpected answer ${JSON.stringify(result)}`);
  }
  return result;
}

const maxV2LengthArb = fc.oneof(
  fc.constant(PROXY_V2_DEFAULT_MAX_LENGTH),
  fc.integer({ min: 16, max: 65551 }),
);

const v1Starts = [
  "PROXY ",
  "PROXY TCP4 ",
  "PROXY TCP6 ",
  "PROXY UNKNOWN",
  "PROXY TCP4 1.2.3.4 ",
  "PROXY TCP6 ::1 ::2 ",
];
const v2Starts = [0x20, 0x21].flatMap((verCmd) =>
  [0x00, 0x01, 0x10, 0x11, 0x20, 0x21, 0x30, 0x31].map((fam) =>
    Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([verCmd, fam])]),
  ),
);
/** Bytes a v1 line is made of, so random lines get deep into the field checks. */
const v1Chars = fc.constantFrom(..."0123456789abcdefABCDEF.: \r\nPROXYTCUNKW4605%-".split(""));

test("property: no input throws or claims bytes it does not have", () => {
  const anyBytes = fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a));
  const v1Like = fc
    .tuple(fc.constantFrom(...v1Starts), fc.array(v1Chars, { maxLength: 120 }))
    .map(([start, chars]) => bytes(start + chars.join("")));
  const v2Like = fc
    .tuple(fc.constantFrom(...v2Starts), fc.integer({ min: 0, max: 400 }), fc.uint8Array({ maxLength: 420 }))
    .map(([start, length, rest]) => Buffer.concat([start, u16(length), Buffer.from(rest)]));
  fc.assert(
    fc.property(fc.oneof(anyBytes, v1Like, v2Like), maxV2LengthArb, (input, maxV2Length) => {
      checkInvariants(input, maxV2Length);
    }),
    { numRuns: 3000 },
  );
});

test("property: valid v1 headers parse exactly, their prefixes are incomplete", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.tuple(fc.constant("TCP4" as const), fc.ipV4(), fc.ipV4()),
        fc.tuple(fc.constant("TCP6" as const), fc.ipV6(), fc.ipV6()),
      ),
      fc.integer({ min: 0, max: 65535 }),
      fc.integer({ min: 0, max: 65535 }),
      fc.uint8Array({ maxLength: 40 }),
      ([family, src, dst], sport, dport, after) => {
        const header = bytes(`PROXY ${family} ${src} ${dst} ${sport} ${dport}\r\n`);
        const input = Buffer.concat([header, after]);
        const result = checkInvariants(input, PROXY_V2_DEFAULT_MAX_LENGTH);
        if (header.length > PROXY_V1_MAX_LENGTH) {
          assert.equal(result.kind, "invalid", "long IPv4-in-IPv6 forms can exceed 107 bytes");
          return;
        }
        assert.equal(result.kind, "done");
        if (result.kind !== "done") return;
        assert.equal(result.length, header.length);
        const canonical = (a: string): string =>
          family === "TCP4" ? a : new SocketAddress({ address: a, family: "ipv6" }).address;
        assert.deepEqual(result.info.source, { address: canonical(src), port: sport });
        assert.deepEqual(result.info.destination, { address: canonical(dst), port: dport });
        assertPrefixesIncomplete(header);
      },
    ),
    { numRuns: 300 },
  );
});

test("property: valid v2 headers parse exactly, their prefixes are incomplete, v1 and v2 agree", () => {
  const tlvArb = fc.oneof(
    fc.record({ type: fc.integer({ min: 0xe0, max: 0xff }), value: fc.uint8Array({ maxLength: 40 }) }),
    fc.record({ type: fc.constant(PP2_TYPE.NOOP), value: fc.uint8Array({ maxLength: 10 }) }),
  );
  fc.assert(
    fc.property(
      fc.constantFrom(0x11, 0x21),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.integer({ min: 0, max: 65535 }),
      fc.integer({ min: 0, max: 65535 }),
      fc.uniqueArray(tlvArb, { maxLength: 5 }),
      fc.boolean(),
      fc.uint8Array({ maxLength: 30 }),
      (fam, addressBytes, sport, dport, tlvs, withCrc, after) => {
        const size = fam === 0x11 ? 4 : 16;
        const src = Buffer.from(addressBytes.subarray(0, size));
        const dst = Buffer.from(addressBytes.subarray(16, 16 + size));
        const block = Buffer.concat([src, dst, u16(sport), u16(dport)]);
        const raw = tlvs.map(({ type, value }) => ({ type, value: Buffer.from(value) }));
        const header = v2({ fam, block, tlvs: raw, ...(withCrc ? { crc: "right" as const } : {}) });
        const result = checkInvariants(Buffer.concat([header, after]), PROXY_V2_DEFAULT_MAX_LENGTH);
        assert.equal(result.kind, "done");
        if (result.kind !== "done") return;
        assert.equal(result.length, header.length);
        const { info } = result;
        assert.equal(info.tlvs.raw.length, raw.length + (withCrc ? 1 : 0));
        assert.deepEqual(info.tlvs.raw.slice(0, raw.length), raw);
        assert.equal(info.tlvs.crc32cValid, withCrc ? true : undefined);
        assert.equal(info.source?.port, sport);
        assert.equal(info.destination?.port, dport);
        const text = (address: Buffer): string =>
          size === 4
            ? [...address].join(".")
            : new SocketAddress({
                address: address.toString("hex").replace(/(.{4})(?!$)/g, "$1:"),
                family: "ipv6",
              }).address;
        assert.equal(info.source?.address, text(src));
        assert.equal(info.destination?.address, text(dst));
        // The same addresses sent as a v1 line come back identical.
        const line = `PROXY TCP${size === 4 ? 4 : 6} ${info.source?.address} ${info.destination?.address} ${sport} ${dport}\r\n`;
        const v1 = parseDone(line).info;
        assert.deepEqual([v1.source, v1.destination], [info.source, info.destination]);
        assertPrefixesIncomplete(header);
      },
    ),
    { numRuns: 200 },
  );
});

test("property: truncated or corrupted valid headers never throw", () => {
  const valid = [
    bytes("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
    bytes("PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 4000 25\r\n"),
    bytes("PROXY UNKNOWN\r\n"),
    v2({ tlvs: [tlv(PP2_TYPE.AUTHORITY, "mx.example")], crc: "right" }),
    v2({ fam: 0x31, block: unixPaths("/a", "/b") }),
    v2({
      tlvs: [
        tlv(PP2_TYPE.SSL, sslValue(1, 0, [tlv(0x21, "TLSv1.2"), tlv(0x22, "cn")])),
        tlv(PP2_TYPE.UNIQUE_ID, "u"),
      ],
    }),
  ];
  fc.assert(
    fc.property(
      fc.constantFrom(...valid),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      fc.nat(),
      maxV2LengthArb,
      (header, changes, cut, maxV2Length) => {
        const input = Buffer.from(header);
        for (const [at, byte] of changes) input[at % input.length] = byte;
        checkInvariants(input, maxV2Length);
        checkInvariants(input.subarray(0, cut % (input.length + 1)), maxV2Length);
      },
    ),
    { numRuns: 3000 },
  );
});
