import { lookup } from "node:dns/promises";
import { BlockList, isIP, isIPv6, SocketAddress } from "node:net";
import os from "node:os";

/** One socket to bind: an IP literal (IPv6 without brackets) and a port (0 = chosen by the OS). */
export interface ListenAddress {
  host: string;
  port: number;
}

type PortsOption = string | number | readonly (string | number)[];
type HostsOption = string | readonly string[];

const ACCEPTED = {
  ports: 'a port from 0 to 65535 or several joined by ":"',
  hosts: 'an IP address, a hostname or "*"',
};

/**
 * The seed's list handling: spaces removed, split on ",". Unlike Ruby's split, which drops trailing
 * empty fields, every empty item (also a trailing one) is rejected, as the seed intends ("guess miss-coding").
 */
function splitItems(option: keyof typeof ACCEPTED, value: PortsOption): string[] {
  const text = Array.isArray(value) ? value.join(",") : String(value);
  const items = text.replace(/\s/g, "").split(",");
  if (items.includes("")) {
    throw new TypeError(
      `Invalid ${option} ${JSON.stringify(text)}: give one or more comma-separated items, none empty, each ${ACCEPTED[option]}.`,
    );
  }
  return items;
}

/** Validates `ports`; item i holds the ports for hosts item i, e.g. "2525:3535, 4545" gives [[2525, 3535], [4545]]. */
export function parsePortItems(ports: PortsOption): number[][] {
  return splitItems("ports", ports).map((item) =>
    item.split(":").map((port) => {
      const value = Number(port);
      if (!/^\d+$/.test(port) || value > 65535) {
        throw new RangeError(
          `Invalid ports item ${JSON.stringify(item)}: each port must be an integer from 0 to 65535.`,
        );
      }
      return value;
    }),
  );
}

/**
 * Validates a tlsPorts or proxyPorts value: each of its ports must be one the server listens on (one of
 * `ports`), or no listener would ever use it.
 */
export function parsePortSubset(
  option: string,
  value: string,
  listenPorts: ReadonlySet<number>,
): Set<number> {
  if (value === "") return new Set();
  const ports = parsePortItems(value).flat();
  const stray = ports.find((port) => !listenPorts.has(port));
  if (stray !== undefined) {
    throw new RangeError(
      `Invalid option ${option}: port ${stray} is not one of ports (${[...listenPorts].join(", ")}), so no listener would use it.`,
    );
  }
  return new Set(ports);
}

/** Canonical text of an IPv6 literal, so that "::1" and "0:0:0:0:0:0:0:1" are found to be the same address. */
function canonicalIPv6(address: string): string {
  const [ip, zone] = address.split("%");
  const canonical = new SocketAddress({ address: ip, family: "ipv6" }).address;
  return zone === undefined ? canonical : `${canonical}%${zone}`;
}

// Dot-separated labels; catches slips such as "127.0.0.1:2525" early, leaving finer checks to the resolver.
const HOSTNAME = /^[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*\.?$/i;

/** Validates `hosts`: "*", IP literals (IPv6 bare or in brackets, returned bare and canonical) and hostnames. */
export function parseHostItems(hosts: HostsOption): string[] {
  return splitItems("hosts", hosts).map((item) => {
    if (item.startsWith("[") && item.endsWith("]")) {
      const inner = item.slice(1, -1);
      if (!isIPv6(inner)) {
        throw new TypeError(
          `Invalid hosts item ${JSON.stringify(item)}: brackets are only for IPv6 addresses such as "[::1]".`,
        );
      }
      return canonicalIPv6(inner);
    }
    if (isIPv6(item)) return canonicalIPv6(item);
    if (item === "*" || isIP(item) || HOSTNAME.test(item)) return item;
    throw new TypeError(
      `Invalid hosts item ${JSON.stringify(item)}: each host must be an IP address (IPv6 optionally in brackets), a hostname or "*".`,
    );
  });
}

// The seed's "*" filter (after its stackoverflow question 59770803): every IPv4 address but multicast,
// so loopback, private and public ones are kept.
const droppedIPv4 = new BlockList();
droppedIPv4.addSubnet("224.0.0.0", 4, "ipv4");

// For IPv6 the seed keeps loopback, unique-local (fc00::/7) and global addresses, dropping the rest:
// unspecified and v4-compatible (::/96, which also holds ::1, hence the loopback exception below),
// v4-mapped, link-local (it would need a scope id to bind), site-local and multicast.
const droppedIPv6 = new BlockList();
for (const [prefix, length] of [
  ["::", 96],
  ["::ffff:0:0", 96],
  ["fe80::", 10],
  ["fec0::", 10],
  ["ff00::", 8],
] as const) {
  droppedIPv6.addSubnet(prefix, length, "ipv6");
}

/** The addresses "*" stands for: the usable local IPv4 and IPv6 addresses, each once, in interface order. */
export function wildcardAddresses(
  interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces(),
): string[] {
  const addresses = new Set<string>();
  for (const info of Object.values(interfaces).flat()) {
    if (info === undefined) continue;
    // Separate checks per family: a BlockList matches IPv4 addresses against IPv6 rules via ::ffff:0:0/96.
    const keep =
      info.family === "IPv4"
        ? !droppedIPv4.check(info.address, "ipv4")
        : info.address === "::1" || !droppedIPv6.check(info.address, "ipv6");
    if (keep) addresses.add(info.address);
  }
  return [...addresses];
}

/** The IP addresses one hosts item stands for; a hostname gives all its IPv4 and IPv6 addresses, like the seed. */
async function resolveHostItem(item: string): Promise<string[]> {
  if (item === "*") return wildcardAddresses();
  if (isIP(item)) return [item];
  try {
    const results = await lookup(item, { all: true });
    return [...new Set(results.map((result) => result.address))];
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`Cannot resolve hosts item ${JSON.stringify(item)}: ${reason}.`, { cause: error });
  }
}

/**
 * The addresses to bind for the `hosts` and `ports` options, in order. Hosts item i uses ports item i;
 * hosts beyond the last ports item reuse it, and ports items beyond the last hosts item are unused (as in the seed).
 */
export async function resolveListenAddresses(
  hosts: HostsOption,
  ports: PortsOption,
): Promise<ListenAddress[]> {
  const hostItems = parseHostItems(hosts);
  const portItems = parsePortItems(ports);
  const resolved = await Promise.all(hostItems.map(resolveHostItem));
  const addresses: ListenAddress[] = [];
  const itemOf = new Map<string, string>(); // "host:port" -> the hosts item that produced it
  hostItems.forEach((item, index) => {
    for (const host of resolved[index]) {
      for (const port of portItems[Math.min(index, portItems.length - 1)]) {
        const address = { host, port };
        const key = formatAddress(address);
        const earlier = itemOf.get(key);
        // The seed refuses an address given twice, which is "already in use"; port 0 is not one address
        // but a fresh ephemeral port on every bind, so it may repeat.
        if (earlier !== undefined && port !== 0) {
          throw new RangeError(
            `Listen address ${key} is given twice (by hosts items ${JSON.stringify(earlier)} and ${JSON.stringify(item)}), so it would already be in use; remove the duplicate from hosts or ports.`,
          );
        }
        itemOf.set(key, item);
        addresses.push(address);
      }
    }
  });
  return addresses;
}

/** "127.0.0.1:2525" or "[::1]:2525". */
export function formatAddress(address: { host: string; port: number }): string {
  return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
