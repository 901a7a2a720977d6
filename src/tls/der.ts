/**
 * The few ASN.1 DER encodings (ITU-T X.690) that a self-signed X.509 certificate needs. Encoding only:
 * parsing and every cryptographic step stay with node's crypto (OpenSSL). See certificates.ts for why
 * this is not a library.
 */
import { isIPv4, isIPv6 } from "node:net";

/** Tag bytes used here (universal, or context-specific as noted). */
export const Tag = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
  /** [0] EXPLICIT, constructed. */
  explicit0: 0xa0,
  /** [3] EXPLICIT, constructed. */
  explicit3: 0xa3,
  /** GeneralName dNSName: [2] IMPLICIT IA5String. */
  dnsName: 0x82,
  /** GeneralName iPAddress: [7] IMPLICIT OCTET STRING. */
  ipAddress: 0x87,
} as const;

function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One tag-length-value; the contents are concatenated. */
export function tlv(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  return Buffer.concat([Buffer.from([tag]), encodeLength(body.length), body]);
}

export const sequence = (...items: Buffer[]): Buffer => tlv(Tag.sequence, ...items);
export const set = (...items: Buffer[]): Buffer => tlv(Tag.set, ...items);
export const nullValue = (): Buffer => tlv(Tag.null);
export const booleanValue = (value: boolean): Buffer => tlv(Tag.boolean, Buffer.from([value ? 0xff : 0x00]));
export const octetString = (bytes: Buffer): Buffer => tlv(Tag.octetString, bytes);
export const utf8String = (text: string): Buffer => tlv(Tag.utf8String, Buffer.from(text, "utf8"));
/** A BIT STRING whose bits fill whole bytes except `unusedBits` at the end of the last one. */
export const bitString = (bytes: Buffer, unusedBits = 0): Buffer =>
  tlv(Tag.bitString, Buffer.from([unusedBits]), bytes);

/** An INTEGER from unsigned big-endian bytes: minimal, and positive (a 0x00 is added before a high bit). */
export function unsignedInteger(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const trimmed = bytes.subarray(start);
  const positive = (trimmed[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed;
  return tlv(Tag.integer, positive.length === 0 ? Buffer.from([0]) : positive);
}

export const smallInteger = (value: number): Buffer => unsignedInteger(Buffer.from([value]));

/** An OBJECT IDENTIFIER from dotted text such as "2.5.4.3". */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split(".").map(Number);
  const [first = 0, second = 0, ...rest] = arcs;
  const bytes: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    const groups = [arc & 0x7f];
    for (let value = Math.floor(arc / 128); value > 0; value = Math.floor(value / 128))
      groups.unshift((value & 0x7f) | 0x80);
    bytes.push(...groups);
  }
  return tlv(Tag.oid, Buffer.from(bytes));
}

/** RFC 5280 4.1.2.5: UTCTime for the years 1950 to 2049, GeneralizedTime otherwise, always in UTC to the second. */
export function time(date: Date): Buffer {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const year = date.getUTCFullYear();
  return year >= 1950 && year <= 2049
    ? tlv(Tag.utcTime, Buffer.from(digits.slice(2), "ascii"))
    : tlv(Tag.generalizedTime, Buffer.from(digits, "ascii"));
}

/** The 4 or 16 bytes of an IP literal (an IPv6 zone such as "%eth0" is dropped), or undefined for a name. */
export function ipAddressBytes(text: string): Buffer | undefined {
  const address = text.split("%")[0] ?? "";
  if (isIPv4(address)) return Buffer.from(address.split(".").map(Number));
  if (!isIPv6(address)) return undefined;
  let groups: string[];
  let tail: number[] = [];
  let head = address;
  const lastColon = head.lastIndexOf(":");
  const last = head.slice(lastColon + 1);
  if (isIPv4(last)) {
    // An embedded IPv4 address such as ::ffff:192.0.2.1 gives the last 32 bits.
    tail = last.split(".").map(Number);
    head = `${head.slice(0, lastColon + 1)}0:0`;
  }
  const [left = "", right] = head.split("::");
  if (right === undefined) {
    groups = left.split(":");
  } else {
    const leftGroups = left === "" ? [] : left.split(":");
    const rightGroups = right === "" ? [] : right.split(":");
    groups = [...leftGroups, ...Array(8 - leftGroups.length - rightGroups.length).fill("0"), ...rightGroups];
  }
  const bytes = Buffer.alloc(16);
  groups.forEach((group, index) => {
    bytes.writeUInt16BE(Number.parseInt(group, 16), index * 2);
  });
  if (tail.length === 4) Buffer.from(tail).copy(bytes, 12);
  return bytes;
}
