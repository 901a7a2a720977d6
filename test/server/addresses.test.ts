import assert from "node:assert/strict";
import type os from "node:os";
import { describe, test } from "node:test";
import {
  formatAddress,
  parseHostItems,
  parsePortItems,
  resolveListenAddresses,
  wildcardAddresses,
} from "../../src/server/addresses.js";

// Resolving does not bind, so any IP literal will do; these are the seed's README hosts with a
// documentation address (RFC 5737) in place of 192.168.0.1.
const HOSTS = "127.0.0.1, ::1, 192.0.2.1";

async function listen(
  hosts: string | readonly string[],
  ports: string | number | readonly (string | number)[],
) {
  return (await resolveListenAddresses(hosts, ports)).map(formatAddress);
}

describe("the seed's README examples (Multiple ports and addresses)", () => {
  test("2525: one port on all addresses", async () => {
    assert.deepEqual(await listen(HOSTS, "2525"), ["127.0.0.1:2525", "[::1]:2525", "192.0.2.1:2525"]);
  });

  test("2525:3535: two ports on all addresses", async () => {
    assert.deepEqual(await listen(HOSTS, "2525:3535"), [
      "127.0.0.1:2525",
      "127.0.0.1:3535",
      "[::1]:2525",
      "[::1]:3535",
      "192.0.2.1:2525",
      "192.0.2.1:3535",
    ]);
  });

  test("2525, 3535: the second port also serves the hosts after the second", async () => {
    assert.deepEqual(await listen(HOSTS, "2525, 3535"), ["127.0.0.1:2525", "[::1]:3535", "192.0.2.1:3535"]);
  });

  test("2525, 3535, 2525: one port per address", async () => {
    assert.deepEqual(await listen(HOSTS, "2525, 3535, 2525"), [
      "127.0.0.1:2525",
      "[::1]:3535",
      "192.0.2.1:2525",
    ]);
  });

  test("2525, 2525:3535, 2525: two ports on the second address only", async () => {
    assert.deepEqual(await listen(HOSTS, "2525, 2525:3535, 2525"), [
      "127.0.0.1:2525",
      "[::1]:2525",
      "[::1]:3535",
      "192.0.2.1:2525",
    ]);
  });
});

describe("resolveListenAddresses", () => {
  test("hosts beyond the ports items reuse the last item, multi-port items included", async () => {
    assert.deepEqual(await listen("192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4", "25, 587:465"), [
      "192.0.2.1:25",
      "192.0.2.2:587",
      "192.0.2.2:465",
      "192.0.2.3:587",
      "192.0.2.3:465",
      "192.0.2.4:587",
      "192.0.2.4:465",
    ]);
  });

  test("ports items beyond the hosts items are unused, as in the seed", async () => {
    assert.deepEqual(await listen("127.0.0.1", "2525, 3535"), ["127.0.0.1:2525"]);
  });

  test("returns hosts as IP literals without brackets", async () => {
    assert.deepEqual(await resolveListenAddresses("[::1], 127.0.0.1", 25), [
      { host: "::1", port: 25 },
      { host: "127.0.0.1", port: 25 },
    ]);
  });

  test("accepts arrays for hosts and ports", async () => {
    assert.deepEqual(await listen(["127.0.0.1", "[::1]"], [2525, "3535:4545"]), [
      "127.0.0.1:2525",
      "[::1]:3535",
      "[::1]:4545",
    ]);
  });

  test("resolves localhost to its addresses, 127.0.0.1 among them", async () => {
    const hosts = (await resolveListenAddresses("localhost", "2525")).map((address) => address.host);
    assert.ok(hosts.includes("127.0.0.1"), `localhost resolved to ${hosts.join(", ")}`);
    assert.equal(new Set(hosts).size, hosts.length, "each address once");
  });

  test("* stands for the local interface addresses", async () => {
    assert.deepEqual(
      await resolveListenAddresses("*", "2525"),
      wildcardAddresses().map((host) => ({ host, port: 2525 })),
    );
  });

  test("rejects an address given twice, naming it", async () => {
    const twice =
      /^RangeError: Listen address 127\.0\.0\.1:2525 is given twice \(by hosts items "(localhost|127\.0\.0\.1)" and "127\.0\.0\.1"\), so it would already be in use; remove the duplicate from hosts or ports\.$/;
    await assert.rejects(resolveListenAddresses("localhost, 127.0.0.1", "2525"), twice);
    await assert.rejects(resolveListenAddresses("127.0.0.1, 127.0.0.1", "2525"), twice);
    await assert.rejects(resolveListenAddresses("127.0.0.1", "2525:2525"), twice);
    await assert.rejects(
      resolveListenAddresses("::1, [0:0:0:0:0:0:0:1]", "2525"),
      /Listen address \[::1\]:2525/,
    );
  });

  test("allows port 0 twice on one host: each bind gets its own ephemeral port", async () => {
    assert.deepEqual(await listen("127.0.0.1, 127.0.0.1", "0"), ["127.0.0.1:0", "127.0.0.1:0"]);
  });

  test("rejects a hostname that does not resolve", async () => {
    await assert.rejects(resolveListenAddresses("nosuch.invalid", "2525"), {
      name: "Error",
      message: /^Cannot resolve hosts item "nosuch\.invalid": .*ENOTFOUND.*\.$/,
    });
  });

  test("rejects invalid options before any lookup", async () => {
    await assert.rejects(resolveListenAddresses("127.0.0.1", "99999"), RangeError);
    await assert.rejects(resolveListenAddresses("", "2525"), /^TypeError: Invalid hosts ""/);
  });
});

describe("parsePortItems", () => {
  test("removes spaces and splits items on commas and ports on colons", () => {
    assert.deepEqual(parsePortItems(" 2525 : 3535 , 4545 "), [[2525, 3535], [4545]]);
    assert.deepEqual(parsePortItems(2525), [[2525]]);
    assert.deepEqual(parsePortItems(["0", 65535]), [[0], [65535]]);
  });

  const items =
    'give one or more comma-separated items, none empty, each a port from 0 to 65535 or several joined by ":".';
  for (const [ports, message] of [
    ["", `Invalid ports "": ${items}`],
    ["2525,,3535", `Invalid ports "2525,,3535": ${items}`],
    ["2525,", `Invalid ports "2525,": ${items}`],
    [[], `Invalid ports "": ${items}`],
    ["99999", 'Invalid ports item "99999": each port must be an integer from 0 to 65535.'],
    ["-1", 'Invalid ports item "-1": each port must be an integer from 0 to 65535.'],
    [25.5, 'Invalid ports item "25.5": each port must be an integer from 0 to 65535.'],
    ["smtp", 'Invalid ports item "smtp": each port must be an integer from 0 to 65535.'],
    ["2525:", 'Invalid ports item "2525:": each port must be an integer from 0 to 65535.'],
  ] as const) {
    test(`rejects ${JSON.stringify(ports)}`, () => {
      assert.throws(() => parsePortItems(ports), { message });
    });
  }
});

describe("parseHostItems", () => {
  test("removes spaces, strips brackets and writes IPv6 literals canonically", () => {
    assert.deepEqual(parseHostItems(" 127.0.0.1 , [::1], 2001:DB8:0::1, mail.example.com, *"), [
      "127.0.0.1",
      "::1",
      "2001:db8::1",
      "mail.example.com",
      "*",
    ]);
  });

  const items = 'give one or more comma-separated items, none empty, each an IP address, a hostname or "*".';
  for (const [hosts, message] of [
    ["", `Invalid hosts "": ${items}`],
    ["127.0.0.1,,::1", `Invalid hosts "127.0.0.1,,::1": ${items}`],
    [[], `Invalid hosts "": ${items}`],
    [
      "[127.0.0.1]",
      'Invalid hosts item "[127.0.0.1]": brackets are only for IPv6 addresses such as "[::1]".',
    ],
    [
      "127.0.0.1:2525",
      'Invalid hosts item "127.0.0.1:2525": each host must be an IP address (IPv6 optionally in brackets), a hostname or "*".',
    ],
    [
      "mail..example.com",
      'Invalid hosts item "mail..example.com": each host must be an IP address (IPv6 optionally in brackets), a hostname or "*".',
    ],
  ] as const) {
    test(`rejects ${JSON.stringify(hosts)}`, () => {
      assert.throws(() => parseHostItems(hosts), { name: "TypeError", message });
    });
  }
});

describe("wildcardAddresses", () => {
  function entry(address: string): os.NetworkInterfaceInfo {
    const common = { address, mac: "00:00:00:00:00:00", internal: false, cidr: null };
    return address.includes(":")
      ? { ...common, family: "IPv6", netmask: "ffff:ffff:ffff:ffff::", scopeid: 0 }
      : { ...common, family: "IPv4", netmask: "255.255.255.0" };
  }

  test("keeps IPv4 but multicast, and IPv6 loopback, unique-local and global addresses", () => {
    const interfaces = {
      lo: ["127.0.0.1", "::1"].map(entry),
      eth0: ["192.168.1.10", "198.51.100.7", "224.0.0.251", "fd00::1", "2001:db8::1", "fe80::1"].map(entry),
      eth1: ["ff02::1", "fec0::1", "::ffff:1.2.3.4", "::1.2.3.4", "::", "198.51.100.7"].map(entry),
      down: undefined,
    };
    assert.deepEqual(wildcardAddresses(interfaces), [
      "127.0.0.1",
      "::1",
      "192.168.1.10",
      "198.51.100.7",
      "fd00::1",
      "2001:db8::1",
    ]);
  });
});

test("formatAddress brackets IPv6 hosts", () => {
  assert.equal(formatAddress({ host: "127.0.0.1", port: 2525 }), "127.0.0.1:2525");
  assert.equal(formatAddress({ host: "::1", port: 2525 }), "[::1]:2525");
});
