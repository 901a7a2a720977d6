/**
 * The key under which per-address limits count a client: an IPv4 address as it is, an IPv6 address by
 * its /64 (one subscriber usually holds a whole /64, so counting single IPv6 addresses would let one
 * client take 2^64 slots). An IPv4-mapped IPv6 address ("::ffff:192.0.2.1") counts as its IPv4 address.
 */
import { isIPv6 } from "node:net";
import type { SessionContext } from "../protocol/context.js";
import type { ProxyInfo } from "../protocol/proxy.js";

export function clientKey(address: string): string {
  if (!isIPv6(address)) return address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1] as string;
  return `${expandIpv6(address).slice(0, 4).join(":")}::/64`;
}

/** The first groups of an IPv6 address, without leading zeros ("::" expanded; the zone index dropped). */
function expandIpv6(address: string): string[] {
  const [head = "", tail] = (address.split("%")[0] as string).split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  // A dotted IPv4 ending stands for two groups.
  const rightGroups = right.length + (right.at(-1)?.includes(".") ? 1 : 0);
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - rightGroups).fill("0");
  return [...left, ...zeros, ...right].slice(0, 4).map((group) => Number.parseInt(group, 16).toString(16));
}

/**
 * The client the server talks to, on which trust is judged: the TCP peer, or behind a PROXY header the
 * client it names. A v2 LOCAL header is the proxy speaking for itself (a health check): the peer. Under
 * v1 UNKNOWN, or without addresses (UNSPEC, UNIX), the proxy could not say who the client is: "", nobody.
 */
export function clientAddress(peer: string, proxied: ProxyInfo | null): string {
  if (!proxied) return peer;
  if (proxied.command === "LOCAL") return proxied.version === 2 ? peer : "";
  return proxied.source && proxied.family !== "UNIX" ? proxied.source.address : "";
}

/**
 * The key clients a proxy at `proxyAddress` could not name are counted under: one for all of them, apart
 * from the proxy's own address, so that they cannot lock out the clients that connect from it directly.
 */
export function unnamedClientKey(proxyAddress: string): string {
  return `unnamed behind ${clientKey(proxyAddress)}`;
}

/**
 * The key a session's client is counted under by per-address limits: its address's clientKey; a client a
 * PROXY header could not name (ctx.server.remoteIp is then the proxy's) is counted apart from the proxy's
 * own direct clients. "" for a UNIX socket peer, which has no address and is never counted.
 */
export function sessionClientKey(ctx: SessionContext): string {
  const { remoteIp, proxy } = ctx.server;
  if (remoteIp === "") return "";
  const unnamed = proxy !== null && clientAddress(remoteIp, proxy) === "";
  return unnamed ? unnamedClientKey(remoteIp) : clientKey(remoteIp);
}
