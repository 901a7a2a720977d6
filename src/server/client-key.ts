/**
 * The key under which per-address limits count a client: an IPv4 address as it is, an IPv6 address by
 * its /64 (one subscriber usually holds a whole /64, so counting single IPv6 addresses would let one
 * client take 2^64 slots). An IPv4-mapped IPv6 address ("::ffff:192.0.2.1") counts as its IPv4 address.
 */
import { isIPv6 } from "node:net";

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
