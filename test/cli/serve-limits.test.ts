/**
 * `mailgate serve --connections-per-minute / --messages-per-minute --redis`: two instances share one
 * client's quota through Redis; the refusal is logged.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { openLimits } from "../../src/cli/limits.js";
import { RawClient, silentLogger } from "../helpers/clients.js";
import { REDIS_PORT, REDIS_URL, redisOrSkip } from "../helpers/redis.js";
import { endpointOf, get, sample } from "../helpers/scrape.js";
import { printed, startServe } from "../helpers/serve-process.js";
import { TcpProxy } from "../helpers/tcp-proxy.js";

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
  await printed(second, /Refused 127\.0\.0\.1: over the messages-per-minute limit \(421 4\.7\.0\)/);
  assert.equal(await admin.redis.get(`${admin.prefix}messages:127.0.0.1`), "3");
});

test("refused recipients and a rate-limited client are counted in /metrics as the clients saw them", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "mailgate-limits-metrics-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const served = await startServe(dir, [
    ...["--metrics-listen", "127.0.0.1:0", "--maildir", join(dir, "mail")],
    ...["--accept-domains", "example.com", "--connections-per-minute", "3"],
  ]);
  t.after(() => served.child.kill("SIGKILL"));
  const seen = { replies: new Map<string, number>(), accepted: 0, rateRefused: 0 };
  const count = (reply: string) => {
    const type = `${reply[0]}xx`;
    seen.replies.set(type, (seen.replies.get(type) ?? 0) + 1);
    return reply;
  };
  for (let session = 0; session < 3; session++) {
    const client = await RawClient.connect(served.port);
    count((await client.reply()) ?? "");
    count(await client.command("EHLO client.test"));
    count(await client.command("MAIL FROM:<a@x.test>"));
    count(await client.command("RCPT TO:<someone@example.com>"));
    assert.match(count(await client.command("RCPT TO:<someone@elsewhere.test>")), /^550 5\.1\.1 /);
    count(await client.command("DATA"));
    const done = count(await client.command("Subject: counted\r\n\r\nbody\r\n."));
    if (done.startsWith("250 ")) seen.accepted++;
    count(await client.command("QUIT"));
    client.drop();
  }
  const limited = await RawClient.connect(served.port);
  const refusal = (await limited.reply()) ?? "";
  assert.match(refusal, /^421 4\.7\.0 Too many connections from your address/);
  count(refusal);
  seen.rateRefused++;
  limited.drop();

  const metrics = (await get(`${endpointOf(served)}/metrics`)).body;
  assert.equal(sample(metrics, 'mailgate_messages_total{outcome="accepted"}'), seen.accepted);
  assert.equal(seen.accepted, 3);
  assert.equal(
    sample(metrics, 'mailgate_connections_refused_total{reason="connection-rate"}'),
    seen.rateRefused,
  );
  for (const type of ["2xx", "3xx", "5xx"]) {
    assert.equal(sample(metrics, `mailgate_replies_total{class="${type}"}`), seen.replies.get(type), type);
  }
});

test("with --redis, the AUTH failure limit fails closed while Redis cannot answer (the rate limits fail open)", async (t) => {
  const admin = await redisOrSkip(t);
  if (!admin) return;
  const proxy = await TcpProxy.start(REDIS_PORT);
  t.after(() => proxy.close());
  const limits = await openLimits(
    {
      connectionsPerMinute: 0,
      messagesPerMinute: 0,
      redis: `redis://127.0.0.1:${proxy.port}`,
      redisPrefix: admin.prefix,
      redisTimeout: 300,
    },
    { maxAuthFailuresPerIp: 3, authFailureWindow: 600_000 },
    silentLogger,
    () => {},
  );
  t.after(() => limits.close());
  const limiter = limits.authFailureLimiter;
  assert.ok(limiter);
  assert.equal(await limiter.isBlocked("192.0.2.1"), false);
  proxy.cut();
  // Before: false (not held back), so every guess went through while Redis was away. Now the caller's
  // error path answers AUTH 454.
  await assert.rejects(async () => limiter.isBlocked("192.0.2.1"));
});
