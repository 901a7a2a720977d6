/**
 * `mailgate serve` warns at start when others can reach it and one client address may hold every
 * processing slot (--max-connections-per-ip 0, the default): an attack held all 100 slots from one
 * address with a NOOP every 20 s. Loopback and UNIX sockets are not warned about.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { perClientLimitWarning } from "../../src/cli/serve.js";

const DEFAULTS = { maxConnectionsPerIp: 0, maxProcessings: 100 };

test("a listener others can reach, without a per-client limit: a warning naming it", () => {
  for (const address of ["0.0.0.0:25", "192.0.2.7:25", "[::]:25", "[2001:db8::1]:587"]) {
    const warning = perClientLimitWarning(["127.0.0.1:2525", address], DEFAULTS);
    assert.ok(warning?.includes(address), `${address}: ${warning}`);
    assert.ok(!warning?.includes("127.0.0.1:2525"));
    assert.match(
      warning ?? "",
      /--max-connections-per-ip 0: one client address may hold all 100 processing slots/,
    );
  }
});

test("loopback, UNIX sockets, or a per-client limit: no warning", () => {
  assert.equal(
    perClientLimitWarning(
      ["127.0.0.1:2525", "[::1]:2525", "[::ffff:127.0.0.1]:25", "unix:/run/m.sock"],
      DEFAULTS,
    ),
    undefined,
  );
  assert.equal(perClientLimitWarning(["0.0.0.0:25"], { ...DEFAULTS, maxConnectionsPerIp: 20 }), undefined);
});
