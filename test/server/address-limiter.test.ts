/**
 * The in-memory AddressLimiter (its window, its penalty, its bounded memory) and the key it counts AUTH
 * failures under: IPv4 as it is, IPv6 by /64, never the account.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { SessionContext } from "../../src/protocol/context.js";
import { authFailuresByAddress, MemoryAddressLimiter } from "../../src/server/address-limiter.js";
import { newContext } from "../helpers/session-harness.js";

function clockedLimiter(options: { limit: number; windowMs: number; maxKeys?: number }) {
  const clock = { now: 1_000_000 };
  const limiter = new MemoryAddressLimiter({ ...options, now: () => clock.now });
  return { limiter, clock };
}

function from(remoteIp: string, authenticationId = ""): SessionContext {
  const ctx = newContext();
  ctx.server.remoteIp = remoteIp;
  ctx.server.authenticationId = authenticationId;
  return ctx;
}

test("a fixed window from a key's first event: the limit-th event blocks the key for one window", () => {
  const { limiter, clock } = clockedLimiter({ limit: 3, windowMs: 1000 });
  assert.equal(limiter.record("192.0.2.1"), false);
  clock.now += 400;
  assert.equal(limiter.record("192.0.2.1"), false);
  assert.equal(limiter.isBlocked("192.0.2.1"), false);
  clock.now += 400;
  assert.equal(limiter.record("192.0.2.1"), true, "the third event in the window reaches the limit");
  assert.equal(limiter.isBlocked("192.0.2.1"), true);
  assert.equal(limiter.isBlocked("192.0.2.2"), false, "another key is not affected");
  // The penalty is one window from the event that reached the limit (not from the window's start).
  clock.now += 999;
  assert.equal(limiter.isBlocked("192.0.2.1"), true);
  clock.now += 1;
  assert.equal(limiter.isBlocked("192.0.2.1"), false);
  assert.equal(limiter.record("192.0.2.1"), false, "a new window starts from nothing");
});

test("events spread over windows never add up: each window starts again from its first event", () => {
  const { limiter, clock } = clockedLimiter({ limit: 3, windowMs: 1000 });
  for (let i = 0; i < 10; i++) {
    assert.equal(limiter.record("192.0.2.1"), false);
    assert.equal(limiter.record("192.0.2.1"), false);
    clock.now += 1000;
  }
  assert.equal(limiter.isBlocked("192.0.2.1"), false);
});

test("AUTH failures count by client address: IPv6 by /64, IPv4-mapped as IPv4, never by account", async () => {
  const { limiter } = clockedLimiter({ limit: 2, windowMs: 1000 });
  const failures = authFailuresByAddress(limiter);
  assert.equal(await failures.record(from("2001:db8:1:2::1", "alice")), false);
  // Another address of the same /64, another account: the same client.
  assert.equal(await failures.record(from("2001:db8:1:2:ffff:ffff:ffff:ffff", "bob")), true);
  assert.equal(await failures.isBlocked(from("2001:db8:1:2::abcd")), true);
  assert.equal(await failures.isBlocked(from("2001:db8:1:3::1")), false, "the next /64 is another client");
  assert.equal(await failures.isBlocked(from("192.0.2.1", "alice")), false, "the account is not locked");

  assert.equal(await failures.record(from("::ffff:192.0.2.9")), false);
  assert.equal(await failures.record(from("192.0.2.9")), true);
  assert.equal(await failures.isBlocked(from("::ffff:192.0.2.9")), true);
  assert.equal(await failures.isBlocked(from("192.0.2.10")), false);
});

test("a UNIX socket peer (no address) is never counted nor blocked", async () => {
  const { limiter } = clockedLimiter({ limit: 1, windowMs: 1000 });
  const failures = authFailuresByAddress(limiter);
  assert.equal(await failures.record(from("")), false);
  assert.equal(await failures.isBlocked(from("")), false);
  assert.equal(limiter.size, 0);
});

test("memory stays bounded under a spray of addresses: at most maxKeys entries, the oldest go first", () => {
  const { limiter, clock } = clockedLimiter({ limit: 2, windowMs: 60_000, maxKeys: 1000 });
  limiter.record("198.51.100.1");
  assert.equal(limiter.record("198.51.100.1"), true);
  for (let i = 0; i < 200_000; i++) {
    limiter.record(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    assert.ok(limiter.size <= 1000);
  }
  assert.equal(limiter.size, 1000);
  // The newest keys are kept; the oldest (the blocked one among them) made room.
  assert.equal(limiter.isBlocked("198.51.100.1"), false);
  assert.equal(limiter.record("10.3.13.63"), true, "the last key sprayed still has its count");
  // Expired entries go as soon as the limiter is used again, whatever their number.
  clock.now += 60_000;
  limiter.record("203.0.113.5");
  assert.equal(limiter.size, 1);
});

test("options are checked", () => {
  assert.throws(() => new MemoryAddressLimiter({ limit: 0, windowMs: 1000 }), /limit/);
  assert.throws(() => new MemoryAddressLimiter({ limit: 1, windowMs: 0 }), /windowMs/);
  assert.throws(() => new MemoryAddressLimiter({ limit: 1, windowMs: 1, maxKeys: 0 }), /maxKeys/);
});
