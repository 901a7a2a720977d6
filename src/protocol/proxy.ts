/**
 * A pure, incremental parser for the HAProxy PROXY protocol, versions 1 (text) and 2 (binary), as
 * specified in HAProxy's doc/proxy-protocol.txt (revision 2020/03/05). No sockets, no timers: the caller
 * accumulates the first bytes of a connection and calls parseProxyHeader() on everything received so far
 * until it answers "done" or "invalid". The answer is decided as early as the bytes allow:
 *   - "incomplete" only while what was received is still a prefix of some valid header, and only while
 *     fewer than max(PROXY_V1_MAX_LENGTH, maxV2Length) bytes were received, so the caller's buffer is
 *     bounded by the parser itself (its deadline for a slow proxy is its own business);
 *   - "invalid" as soon as the bytes cannot begin a valid header (the first byte of an SMTP command, a
 *     bad v2 version/command/family byte, an oversized v2 length, a v1 field that cannot be completed);
 *   - "done" with the exact header length: the bytes after it belong to the proxied protocol.
 * It never throws on any input and never reads past the end of the input.
 *
 * Strictness (the spec says: any sequence which does not exactly match the protocol must be discarded):
 *   v1: "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF, exactly one space between
 *       fields, at most 107 bytes with the CRLF; a bare CR or LF is invalid. Addresses must be of the
 *       declared family (node:net isIP; no zone index); ports are 0-65535 without leading zeros.
 *       "PROXY UNKNOWN" may be followed by anything (but CR or LF) up to the CRLF, which is ignored.
 *   v2: version 2; command LOCAL (0x0) or PROXY (0x1); family UNSPEC/INET/INET6/UNIX with transport
 *       UNSPEC or STREAM (DGRAM is refused: SMTP runs over a stream). The address block must be as long
 *       as the family requires; the rest of the header is TLVs, each bounds-checked (a TLV running past
 *       the header is invalid). A CRC32C TLV is verified and a mismatch is invalid; known TLVs may appear
 *       once each, with the sizes the spec gives (CRC32C 4 bytes, UNIQUE_ID at most 128, SSL at least 5).
 *       A family or transport of UNSPEC under PROXY gives no addresses (the spec says to ignore them);
 *       under LOCAL the address block is skipped whatever the family says, and if the length is shorter
 *       than that family's block the whole body is ignored (no TLVs), since LOCAL must be accepted.
 */
import { isIP, SocketAddress } from "node:net";

export interface ProxyAddress {
  /** IPv4 dotted quad, IPv6 as node:net prints it (RFC 5952 via inet_ntop), or a unix socket path. */
  address: string;
  /** 0 for unix sockets. */
  port: number;
}

export interface ProxyInfo {
  version: 1 | 2;
  /**
   * "PROXY": the connection was relayed for a client. "LOCAL" (v2 LOCAL, or v1 "UNKNOWN"): a health check
   * or unknown endpoints, so the real peer is kept. Even under "PROXY" the addresses are absent when the
   * family is "UNSPEC": use `source`/`destination` when present, the real peer otherwise.
   */
  command: "PROXY" | "LOCAL";
  /** "UNSPEC" for LOCAL, v1 UNKNOWN, and v2 PROXY with an UNSPEC family or transport. */
  family: "TCP4" | "TCP6" | "UNIX" | "UNSPEC";
  /** The client: present when command is "PROXY" and family is not "UNSPEC". */
  source?: ProxyAddress;
  /** The address the client connected to (the proxy's listener). */
  destination?: ProxyAddress;
  tlvs: ProxyTlvs;
}

export interface ProxySslInfo {
  /** Bit field of PP2_CLIENT_SSL (0x01), PP2_CLIENT_CERT_CONN (0x02), PP2_CLIENT_CERT_SESS (0x04). */
  client: number;
  /** 0 when the client presented a certificate and it was verified, non-zero otherwise. */
  verify: number;
  version?: string;
  /** Common name of the client certificate's subject (UTF-8). */
  cn?: string;
  cipher?: string;
  sigAlg?: string;
  keyAlg?: string;
}

/** Decoded v2 TLVs (always empty but for `raw: []` in v1). Values are copies, not views of the input. */
export interface ProxyTlvs {
  /** PP2_TYPE_ALPN, decoded as latin1 (one char per byte). */
  alpn?: string;
  /** PP2_TYPE_AUTHORITY (the TLS SNI or another host name), UTF-8. */
  authority?: string;
  /** PP2_TYPE_UNIQUE_ID, opaque, at most 128 bytes. */
  uniqueId?: Buffer;
  /** PP2_TYPE_NETNS, the network namespace name. */
  netns?: string;
  ssl?: ProxySslInfo;
  /** Present (and true) when a CRC32C TLV was sent: a header whose checksum is wrong is "invalid". */
  crc32cValid?: boolean;
  /** Every top-level TLV in header order, known or not (NOOP and custom 0xE0-0xEF ones included). */
  raw: { type: number; value: Buffer }[];
}

export type ProxyParse =
  /** Every byte so far is consistent with a header: call again with more bytes (under a deadline). */
  | { kind: "incomplete" }
  /** A complete, valid header of `length` bytes: input.subarray(length) belongs to the next protocol. */
  | { kind: "done"; info: ProxyInfo; length: number }
  /** Not a valid header: close the connection without a reply. `reason` is for logs. */
  | { kind: "invalid"; reason: string };

export interface ProxyParseOptions {
  /** Largest accepted v2 header, fixed 16 bytes included (default PROXY_V2_DEFAULT_MAX_LENGTH). */
  maxV2Length?: number;
}

/** The longest v1 line, CRLF included ("PROXY UNKNOWN" with two full IPv6 addresses and ports). */
export const PROXY_V1_MAX_LENGTH = 107;
/** Default maxV2Length: far above what proxies send (a few hundred bytes with TLS TLVs). */
export const PROXY_V2_DEFAULT_MAX_LENGTH = 4096;
/** The fixed part of a v2 header: signature, version/command, family/transport, length. */
export const PROXY_V2_FIXED_LENGTH = 16;

export const PROXY_V2_SIGNATURE: Buffer = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);

/** TLV types registered by the spec (2.2). */
export const PP2_TYPE = {
  ALPN: 0x01,
  AUTHORITY: 0x02,
  CRC32C: 0x03,
  NOOP: 0x04,
  UNIQUE_ID: 0x05,
  SSL: 0x20,
  NETNS: 0x30,
} as const;

/** Sub-TLV types inside PP2_TYPE_SSL. */
export const PP2_SUBTYPE_SSL = {
  VERSION: 0x21,
  CN: 0x22,
  CIPHER: 0x23,
  SIG_ALG: 0x24,
  KEY_ALG: 0x25,
} as const;

/** Bits of the SSL TLV's `client` field. */
export const PP2_CLIENT = { SSL: 0x01, CERT_CONN: 0x02, CERT_SESS: 0x04 } as const;

const V1_PREFIX = Buffer.from("PROXY ", "latin1");
const CR = 13;
const LF = 10;
const MAX_UNIQUE_ID = 128;
const SSL_FIXED_LENGTH = 5;
const TLV_HEADER_LENGTH = 3;

const INCOMPLETE: ProxyParse = Object.freeze({ kind: "incomplete" });
const invalid = (reason: string): ProxyParse => ({ kind: "invalid", reason });

/**
 * Parses the PROXY header at the start of `input` (everything received so far on the connection).
 * Throws only a RangeError for a bad `options.maxV2Length`, never because of the input.
 */
export function parseProxyHeader(input: Buffer, options: ProxyParseOptions = {}): ProxyParse {
  const maxV2Length = options.maxV2Length ?? PROXY_V2_DEFAULT_MAX_LENGTH;
  if (
    !Number.isInteger(maxV2Length) ||
    maxV2Length < PROXY_V2_FIXED_LENGTH ||
    maxV2Length > PROXY_V2_FIXED_LENGTH + 0xffff
  ) {
    throw new RangeError(`maxV2Length must be an integer from 16 to 65551, got ${maxV2Length}`);
  }
  if (input.length === 0) return INCOMPLETE;
  if (startsWithPrefixOf(input, V1_PREFIX)) {
    return input.length < V1_PREFIX.length ? INCOMPLETE : parseV1(input);
  }
  if (startsWithPrefixOf(input, PROXY_V2_SIGNATURE)) {
    return input.length < PROXY_V2_SIGNATURE.length ? INCOMPLETE : parseV2(input, maxV2Length);
  }
  return invalid("not a PROXY protocol header");
}

/** True when input and prefix agree on their common length. */
function startsWithPrefixOf(input: Buffer, prefix: Buffer): boolean {
  const n = Math.min(input.length, prefix.length);
  return input.compare(prefix, 0, n, 0, n) === 0;
}

// ---------------------------------------------------------------------------------------------------
// Version 1

function parseV1(input: Buffer): ProxyParse {
  const limit = Math.min(input.length, PROXY_V1_MAX_LENGTH);
  let end = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const byte = input[i];
    if (byte === CR || byte === LF) {
      end = i;
      break;
    }
  }
  if (end === -1) {
    if (input.length >= PROXY_V1_MAX_LENGTH) return invalid("v1: no CRLF within 107 bytes");
    return checkV1Line(input.toString("latin1"), false);
  }
  if (input[end] === LF) return invalid("v1: bare LF");
  if (end + 2 > PROXY_V1_MAX_LENGTH) return invalid("v1: line longer than 107 bytes");
  if (end + 1 < input.length && input[end + 1] !== LF) return invalid("v1: bare CR");
  // The line is complete once a CR is seen: validate it now, even if its LF has not arrived yet.
  const result = checkV1Line(input.toString("latin1", 0, end), true);
  if (result.kind !== "done") return result;
  return end + 1 === input.length ? INCOMPLETE : { ...result, length: end + 2 };
}

const V1_FAMILIES = ["TCP4", "TCP6", "UNKNOWN"];
const V1_IPV4_CHARS = /^[0-9.]*$/;
const V1_IPV6_CHARS = /^[0-9A-Fa-f:.]*$/;
const V1_PORT_CHARS = /^[0-9]*$/;
/** Longest textual forms: "255.255.255.255" and "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255". */
const V1_IPV4_MAX = 15;
const V1_IPV6_MAX = 45;

/**
 * Validates a v1 line without its CRLF. When `complete` is false the line is a prefix of what is still
 * to come: complete fields are checked fully and the last one only as a possible beginning. The "done"
 * answer carries length 0; parseV1 fills it in.
 */
function checkV1Line(line: string, complete: boolean): ProxyParse {
  const fields = line.split(" "); // fields[0] is "PROXY", guaranteed by the prefix
  const family = fields[1] ?? "";
  if (family === "UNKNOWN" && (fields.length > 2 || complete)) {
    if (!complete) return INCOMPLETE; // whatever follows "PROXY UNKNOWN " up to the CRLF is ignored
    return {
      kind: "done",
      length: 0,
      info: { version: 1, command: "LOCAL", family: "UNSPEC", tlvs: { raw: [] } },
    };
  }
  if (fields.length === 2 && !complete) {
    return V1_FAMILIES.some((name) => name.startsWith(family)) ? INCOMPLETE : invalid("v1: unknown protocol");
  }
  if (family !== "TCP4" && family !== "TCP6") return invalid("v1: unknown protocol");
  if (fields.length > 6) return invalid("v1: too many fields or an extra space");
  const ipVersion = family === "TCP4" ? 4 : 6;
  for (let i = 2; i < fields.length; i++) {
    const field = fields[i] ?? "";
    const partial = !complete && i === fields.length - 1;
    const reason = i < 4 ? checkV1Address(field, ipVersion, partial) : checkV1Port(field, partial);
    if (reason) return invalid(`v1: ${reason}`);
  }
  if (!complete) return INCOMPLETE;
  if (fields.length < 6) return invalid("v1: missing fields");
  const [, , src = "", dst = "", sport = "", dport = ""] = fields;
  const source = v1Address(src, ipVersion);
  const destination = v1Address(dst, ipVersion);
  if (source === null || destination === null) return invalid("v1: bad address");
  return {
    kind: "done",
    length: 0,
    info: {
      version: 1,
      command: "PROXY",
      family,
      source: { address: source, port: Number(sport) },
      destination: { address: destination, port: Number(dport) },
      tlvs: { raw: [] },
    },
  };
}

function checkV1Address(field: string, ipVersion: 4 | 6, partial: boolean): string | null {
  if (partial) {
    const chars = ipVersion === 4 ? V1_IPV4_CHARS : V1_IPV6_CHARS;
    const max = ipVersion === 4 ? V1_IPV4_MAX : V1_IPV6_MAX;
    return chars.test(field) && field.length <= max ? null : `bad IPv${ipVersion} address`;
  }
  if (field === "") return "empty field (an extra space?)";
  const found = isIP(field);
  if (found === ipVersion && !field.includes("%")) return null;
  if (found !== 0 && found !== ipVersion) return `IPv${found} address for TCP${ipVersion}`;
  return `bad IPv${ipVersion} address`;
}

function checkV1Port(field: string, partial: boolean): string | null {
  if (!V1_PORT_CHARS.test(field) || field.length > 5) return "bad port";
  if (field.length > 1 && field.startsWith("0")) return "port with a leading zero";
  if (Number(field) > 0xffff) return "port out of range";
  if (field === "" && !partial) return "empty field (an extra space?)";
  return null;
}

/** The canonical form of a validated v1 address, or null. */
function v1Address(text: string, ipVersion: 4 | 6): string | null {
  return ipVersion === 4 ? text : canonicalIpv6(text);
}

function canonicalIpv6(text: string): string | null {
  try {
    return new SocketAddress({ address: text, family: "ipv6" }).address;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------
// Version 2

const FAMILY_UNSPEC = 0x0;
const FAMILY_INET = 0x1;
const FAMILY_INET6 = 0x2;
const FAMILY_UNIX = 0x3;
const TRANSPORT_STREAM = 0x1;
const TRANSPORT_DGRAM = 0x2;
const COMMAND_LOCAL = 0x0;
const COMMAND_PROXY = 0x1;
/** Address block size by family: addresses and, for IP, the two ports. */
const ADDRESS_BLOCK = [0, 12, 36, 216] as const;
const UNIX_PATH_LENGTH = 108;

function parseV2(input: Buffer, maxV2Length: number): ProxyParse {
  const verCmd = input[12];
  if (verCmd === undefined) return INCOMPLETE;
  if (verCmd >> 4 !== 2) return invalid("v2: unsupported version");
  const command = verCmd & 0x0f;
  if (command !== COMMAND_LOCAL && command !== COMMAND_PROXY) return invalid("v2: unknown command");
  const famByte = input[13];
  if (famByte === undefined) return INCOMPLETE;
  const family = famByte >> 4;
  const transport = famByte & 0x0f;
  if (family > FAMILY_UNIX) return invalid("v2: unknown address family");
  if (transport > TRANSPORT_DGRAM) return invalid("v2: unknown transport");
  if (transport === TRANSPORT_DGRAM) return invalid("v2: DGRAM transport is not supported");
  if (input.length < PROXY_V2_FIXED_LENGTH) return INCOMPLETE;
  const bodyLength = input.readUInt16BE(14);
  const total = PROXY_V2_FIXED_LENGTH + bodyLength;
  if (total > maxV2Length) return invalid(`v2: oversized header (${total} > ${maxV2Length} bytes)`);
  if (input.length < total) return INCOMPLETE;

  const blockLength = ADDRESS_BLOCK[family] ?? 0;
  let tlvStart = PROXY_V2_FIXED_LENGTH + blockLength;
  if (bodyLength < blockLength) {
    if (command === COMMAND_PROXY) return invalid("v2: address block shorter than its family requires");
    tlvStart = total; // LOCAL ignores the family: accept, with nothing to decode
  }

  const info: ProxyInfo = { version: 2, command: "LOCAL", family: "UNSPEC", tlvs: { raw: [] } };
  if (command === COMMAND_PROXY) {
    info.command = "PROXY";
    if (transport === TRANSPORT_STREAM && family !== FAMILY_UNSPEC) decodeV2Addresses(input, family, info);
  }
  const tlvError = decodeTlvs(input, tlvStart, total, info.tlvs);
  if (tlvError) return invalid(`v2: ${tlvError}`);
  return { kind: "done", info, length: total };
}

function decodeV2Addresses(input: Buffer, family: number, info: ProxyInfo): void {
  const at = PROXY_V2_FIXED_LENGTH;
  if (family === FAMILY_INET) {
    info.family = "TCP4";
    info.source = { address: ipv4At(input, at), port: input.readUInt16BE(at + 8) };
    info.destination = { address: ipv4At(input, at + 4), port: input.readUInt16BE(at + 10) };
  } else if (family === FAMILY_INET6) {
    info.family = "TCP6";
    info.source = { address: ipv6At(input, at), port: input.readUInt16BE(at + 32) };
    info.destination = { address: ipv6At(input, at + 16), port: input.readUInt16BE(at + 34) };
  } else {
    info.family = "UNIX";
    info.source = { address: unixPathAt(input, at), port: 0 };
    info.destination = { address: unixPathAt(input, at + UNIX_PATH_LENGTH), port: 0 };
  }
}

function ipv4At(input: Buffer, at: number): string {
  return `${input[at]}.${input[at + 1]}.${input[at + 2]}.${input[at + 3]}`;
}

function ipv6At(input: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(input.readUInt16BE(at + i).toString(16));
  const full = groups.join(":");
  return canonicalIpv6(full) ?? full; // eight hex groups are always valid; the fallback is unreachable
}

/**
 * A sun_path of 108 bytes: the path up to its first NUL (UTF-8). A path starting with NUL is a Linux
 * abstract socket name, returned as node:net spells it ("\0name"), trailing NUL padding removed.
 */
function unixPathAt(input: Buffer, at: number): string {
  const path = input.subarray(at, at + UNIX_PATH_LENGTH);
  if (path[0] === 0) {
    let end = path.length;
    while (end > 1 && path[end - 1] === 0) end--;
    return `\0${path.toString("utf8", 1, end)}`;
  }
  const nul = path.indexOf(0);
  return path.toString("utf8", 0, nul === -1 ? path.length : nul);
}

/** Decodes the TLVs in input[start, end) into `tlvs`; returns the reason when they are invalid. */
function decodeTlvs(input: Buffer, start: number, end: number, tlvs: ProxyTlvs): string | null {
  let crcAt = -1;
  let at = start;
  while (at < end) {
    if (end - at < TLV_HEADER_LENGTH) return "truncated TLV";
    const type = input[at] ?? 0;
    const valueStart = at + TLV_HEADER_LENGTH;
    const valueEnd = valueStart + input.readUInt16BE(at + 1);
    if (valueEnd > end) return `TLV 0x${hex(type)} runs past the header`;
    const value = Buffer.from(input.subarray(valueStart, valueEnd)); // a copy: the input is a socket chunk
    tlvs.raw.push({ type, value });
    at = valueEnd;
    switch (type) {
      case PP2_TYPE.ALPN:
        if (tlvs.alpn !== undefined) return "duplicate ALPN TLV";
        tlvs.alpn = value.toString("latin1");
        break;
      case PP2_TYPE.AUTHORITY:
        if (tlvs.authority !== undefined) return "duplicate AUTHORITY TLV";
        tlvs.authority = value.toString("utf8");
        break;
      case PP2_TYPE.CRC32C:
        if (crcAt !== -1) return "duplicate CRC32C TLV";
        if (value.length !== 4) return "CRC32C TLV is not 4 bytes";
        crcAt = valueStart;
        break;
      case PP2_TYPE.UNIQUE_ID:
        if (tlvs.uniqueId !== undefined) return "duplicate UNIQUE_ID TLV";
        if (value.length > MAX_UNIQUE_ID) return "UNIQUE_ID TLV longer than 128 bytes";
        tlvs.uniqueId = value;
        break;
      case PP2_TYPE.SSL: {
        if (tlvs.ssl !== undefined) return "duplicate SSL TLV";
        const ssl = decodeSsl(value);
        if (typeof ssl === "string") return ssl;
        tlvs.ssl = ssl;
        break;
      }
      case PP2_TYPE.NETNS:
        if (tlvs.netns !== undefined) return "duplicate NETNS TLV";
        tlvs.netns = value.toString("latin1");
        break;
      default: // NOOP, custom, experimental, future and unregistered types: kept in raw only
        break;
    }
  }
  if (crcAt !== -1) {
    // The checksum covers the whole header with the checksum field itself zeroed (spec 2.2.3).
    const expected = input.readUInt32BE(crcAt);
    let crc = crc32c(input.subarray(0, crcAt));
    crc = crc32c(ZERO_CRC, crc);
    crc = crc32c(input.subarray(crcAt + 4, end), crc);
    if (crc !== expected) return "CRC32C mismatch";
    tlvs.crc32cValid = true;
  }
  return null;
}

const ZERO_CRC = Buffer.alloc(4);

function decodeSsl(value: Buffer): ProxySslInfo | string {
  if (value.length < SSL_FIXED_LENGTH) return "SSL TLV shorter than 5 bytes";
  const ssl: ProxySslInfo = { client: value[0] ?? 0, verify: value.readUInt32BE(1) };
  let at = SSL_FIXED_LENGTH;
  while (at < value.length) {
    if (value.length - at < TLV_HEADER_LENGTH) return "truncated SSL sub-TLV";
    const type = value[at] ?? 0;
    const subStart = at + TLV_HEADER_LENGTH;
    const subEnd = subStart + value.readUInt16BE(at + 1);
    if (subEnd > value.length) return `SSL sub-TLV 0x${hex(type)} runs past the SSL TLV`;
    at = subEnd;
    const key = SSL_FIELDS[type];
    if (key === undefined) continue; // an unknown sub-TLV: the whole SSL value stays in raw
    if (ssl[key] !== undefined) return `duplicate SSL sub-TLV 0x${hex(type)}`;
    ssl[key] = value.toString(key === "cn" ? "utf8" : "latin1", subStart, subEnd);
  }
  return ssl;
}

const SSL_FIELDS: Partial<Record<number, "version" | "cn" | "cipher" | "sigAlg" | "keyAlg">> = {
  [PP2_SUBTYPE_SSL.VERSION]: "version",
  [PP2_SUBTYPE_SSL.CN]: "cn",
  [PP2_SUBTYPE_SSL.CIPHER]: "cipher",
  [PP2_SUBTYPE_SSL.SIG_ALG]: "sigAlg",
  [PP2_SUBTYPE_SSL.KEY_ALG]: "keyAlg",
};

const hex = (byte: number): string => byte.toString(16).padStart(2, "0");

// ---------------------------------------------------------------------------------------------------
// CRC32C

/** Table for the reflected Castagnoli polynomial 0x82F63B78 (RFC 4960 appendix B, RFC 3720 B.4). */
const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/**
 * CRC32C of `data`. Pass the result of a previous call as `crc` to continue it:
 * crc32c(b, crc32c(a)) === crc32c(a + b). crc32c("123456789") === 0xe3069283.
 */
export function crc32c(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) {
    c = (CRC32C_TABLE[(c ^ (data[i] ?? 0)) & 0xff] ?? 0) ^ (c >>> 8);
  }
  return ~c >>> 0;
}
