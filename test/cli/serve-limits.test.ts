/**
 * `mailgate serve --connections-per-minute / --messages-per-minute --redis`: two instances share one
 * client's quota through Redis; the refusal is logged.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { RawClient } from "../helpers/clients.js";
import { REDIS_URL, redisOrSkip } from "../helpers/redis.js";
import { startServe } from "../helpers/serve-process.js";

test("two mailgate serve instances share a client's message quota through Redis", async (t) => {
  const admin = await redisOrSkip(t);
  if (!admin) return;
  const dir = await mkdtemp(join(tmpdir(), "mailgate-limits-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // A generous timeout: on a loaded machine a slow answer would fail open, and the quota not hold.
  const flags = [
    "--messages-per-minute",
    "2",
    "--redis",
    REDIS_URL,
    "--redis-prefix",
    admin.prefix,
    "--redis-timeout",
    "5000",
  ];
  const first = await startServe(dir, [...flags, "--maildir", join(dir, "a")]);
  t.after(() => first.child.kill("SIGKILL"));
  const second = await startServe(dir, [...flags, "--maildir", join(dir, "b")]);
  t.after(() => second.child.kill("SIGKILL"));
  for (const served of [first, second])
    assert.match(served.output(), /Per-address limits are kept in Redis at redis:/);

  const transaction = async (port: number) => {
    const client = await RawClient.greeted(port);
    await client.command("EHLO client.test");
    const reply = await client.command("MAIL FROM:<a@x.test>");
    client.drop();
    return reply;
  };
  assert.match(await transaction(first.port), /^250 /);
  assert.match(await transaction(first.port), /^250 /);
  assert.equal(
    await transaction(second.port),
    "421 4.7.0 Too many messages from your address, try again later\r\n",
    "the quota used on the first instance holds on the second",
  );
  assert.match(
    second.output(),
    /\[127\.0\.0\.1:\d+\] Refused: over the messages-per-minute limit \(421 4\.7\.0\)/,
  );
  assert.equal(await admin.redis.get(`${admin.prefix}messages:127.0.0.1`), "3");
});
