/**
 * Fuzz target: the PROXY protocol v1/v2 parser (src/protocol/proxy.ts) on arbitrary first bytes.
 *
 * Input: [limit choice][cut choice][bytes]. The limit choice picks maxV2Length (the default, the
 * smallest, one that fits a UNIX address block, the largest); the cut choice a prefix to compare with.
 *
 * Invariants (the parser's own promises):
 *   - it never throws, whatever the bytes;
 *   - "incomplete" only below max(107, maxV2Length) bytes, so the caller's buffer is bounded;
 *   - "done" names a header inside the input and inside the limits: a v1 line ends with CRLF, a v2
 *     header is 16 bytes plus its length field; the addresses are of the family announced, the ports
 *     16-bit; the same header alone parses to the same answer;
 *   - decided as early as the bytes allow, and never revised: every shorter prefix of a header is
 *     "incomplete"; a prefix found "invalid" or "done" gets the same answer with more bytes after it.
 */

import { isIP } from "node:net";
import { isDeepStrictEqual } from "node:util";
import {
  PROXY_V1_MAX_LENGTH,
  PROXY_V2_DEFAULT_MAX_LENGTH,
  PROXY_V2_FIXED_LENGTH,
  type ProxyInfo,
  type ProxyParse,
  parseProxyHeader,
} from "../../src/protocol/proxy.js";
import { invariant } from "../finding.js";

const V2_LIMITS = [PROXY_V2_DEFAULT_MAX_LENGTH, PROXY_V2_FIXED_LENGTH, 232, PROXY_V2_FIXED_LENGTH + 0xffff];

export function fuzz(data: Buffer): void {
  if (data.length < 2) return;
  const maxV2Length = V2_LIMITS[(data[0] as number) % V2_LIMITS.length] as number;
  const input = data.subarray(2);
  const parse = (bytes: Buffer) => parseProxyHeader(bytes, { maxV2Length });
  const result = parse(input);
  const bound = Math.max(PROXY_V1_MAX_LENGTH, maxV2Length);

  if (result.kind === "incomplete") {
    invariant(input.length < bound, `"incomplete" after ${input.length} bytes (bound ${bound})`);
  } else if (result.kind === "done") {
    checkHeader(input, result.length, result.info, bound);
    invariant(isDeepStrictEqual(parse(input.subarray(0, result.length)), result), "the header alone differs");
    const shorter = Math.floor(((data[1] as number) / 256) * result.length);
    for (const cut of new Set([shorter, result.length - 1])) {
      const early = parse(input.subarray(0, cut));
      invariant(early.kind === "incomplete", `a ${cut}-byte prefix of a header is "${early.kind}"`);
    }
  }
  // A prefix's decision stands once more bytes come.
  const cut = Math.floor(((data[1] as number) / 256) * input.length);
  const prefix = parse(input.subarray(0, cut));
  if (prefix.kind !== "incomplete") {
    invariant(sameDecision(prefix, result), () => `${cut} bytes: "${prefix.kind}", all: "${result.kind}"`);
  }
}

function sameDecision(prefix: ProxyParse, whole: ProxyParse): boolean {
  if (prefix.kind === "invalid") return whole.kind === "invalid";
  return isDeepStrictEqual(prefix, whole);
}

function checkHeader(input: Buffer, length: number, info: ProxyInfo, bound: number): void {
  invariant(length > 0 && length <= input.length && length <= bound, `header length ${length} out of range`);
  if (info.version === 1) {
    invariant(input.toString("latin1", length - 2, length) === "\r\n", "a v1 header not ending in CRLF");
  } else {
    invariant(length === PROXY_V2_FIXED_LENGTH + input.readUInt16BE(14), "a v2 length that is not its own");
  }
  const { source, destination } = info;
  const withAddresses = info.command === "PROXY" && info.family !== "UNSPEC";
  invariant(withAddresses === (source !== undefined && destination !== undefined), "addresses vs family");
  for (const end of [source, destination]) {
    if (!end) continue;
    invariant(Number.isInteger(end.port) && end.port >= 0 && end.port <= 0xffff, `port ${end.port}`);
    if (info.family === "TCP4") invariant(isIP(end.address) === 4, `TCP4 address ${end.address}`);
    if (info.family === "TCP6") invariant(isIP(end.address) === 6, `TCP6 address ${end.address}`);
  }
}
