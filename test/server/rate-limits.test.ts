/**
 * Rate limits per client address (clientRateLimits): connections and transactions per window, 421 4.7.0
 * for the one over the limit, kept in memory or shared through Redis (RedisAddressLimiter), which fails
 * open when Redis cannot answer.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  clientRateLimits,
  connectRedis,
  RedisAddressLimiter,
  SmtpError,
  SmtpServer,
} from "../../src/index.js";
import { RawClient, silentLogger } from "../helpers/clients.js";
import { redisOrSkip } from "../helpers/redis.js";
import { TcpProxy } from "../helpers/tcp-proxy.js";

async function startServer(t: import("node:test").TestContext, hooks: object): Promise<number> {
  const server = new SmtpServer({ hosts: "127.0.0.1", ports: 0, logger: silentLogger, ...hooks });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  return server.ports[0] as number;
}

/** The greeting a new connection gets (its first reply). */
async function greeting(port: number): Promise<string> {
  const client = await RawClient.connect(port);
  try {
    return (await client.reply()) ?? "";
  } finally {
    client.drop();
  }
}

describe("rate limits per client address", () => {
  test("connections: the one over the limit gets 421 4.7.0, and the address stays held back", async (t) => {
    const refused: string[] = [];
    const port = await startServer(
      t,
      clientRateLimits({ connections: 2, onRefused: (_ctx, name) => refused.push(name) }),
    );
    assert.match(await greeting(port), /^220 /);
    assert.match(await greeting(port), /^220 /);
    assert.equal(
      await greeting(port),
      "421 4.7.0 Too many connections from your address, try again later\r\n",
    );
    assert.match(await greeting(port), /^421 4\.7\.0 /, "held back for the window");
    assert.deepEqual(refused, ["connections", "connections"]);
  });

  test("messages: the transaction over the limit gets 421 4.7.0 and the connection closes", async (t) => {
    const port = await startServer(t, clientRateLimits({ messages: 2 }));
    const client = await RawClient.greeted(port);
    await client.command("EHLO client.test");
    for (let i = 0; i < 2; i++) {
      assert.match(await client.command("MAIL FROM:<a@x.test>"), /^250 /);
      assert.match(await client.command("RSET"), /^250 /);
    }
    assert.equal(
      await client.command("MAIL FROM:<a@x.test>"),
      "421 4.7.0 Too many messages from your address, try again later\r\n",
    );
    assert.equal(await client.untilEnd(), "");
  });

  test("Redis: two servers share one count; an unreachable Redis fails open", async (t) => {
    const admin = await redisOrSkip(t);
    if (!admin) return;
    const proxy = await TcpProxy.start(6379);
    t.after(() => proxy.close());
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (message: string) => warnings.push(message) };
    const redis = await connectRedis(`redis://127.0.0.1:${proxy.port}`, logger, { timeoutMs: 300 });
    t.after(() => redis.disconnect());
    const limiter = (name: string, limit: number, windowMs: number) =>
      new RedisAddressLimiter({ redis, prefix: `${admin.prefix}${name}:`, limit, windowMs, logger });
    const first = await startServer(t, clientRateLimits({ connections: 3, limiter }));
    const second = await startServer(t, clientRateLimits({ connections: 3, limiter }));
    assert.match(await greeting(first), /^220 /);
    assert.match(await greeting(first), /^220 /);
    assert.match(await greeting(second), /^220 /);
    assert.match(await greeting(second), /^421 4\.7\.0 /, "the fourth, on the other server");
    assert.equal(await admin.redis.get(`${admin.prefix}connections:127.0.0.1`), "4");
    assert.ok(
      (await admin.redis.pttl(`${admin.prefix}connections:127.0.0.1`)) > 50_000,
      "held back for the window",
    );

    proxy.cut();
    assert.match(await greeting(second), /^220 /, "fails open while Redis is away");
    assert.match(await greeting(second), /^220 /);
    assert.equal(warnings.length, 1, `one warning per outage: ${warnings.join(" | ")}`);
    assert.match(
      warnings[0] ?? "",
      /Redis cannot answer .*per-address limits are not enforced until it is back/,
    );
  });

  test("the AUTH failure limit can be shared through Redis", async (t) => {
    const admin = await redisOrSkip(t);
    if (!admin) return;
    const redis = await connectRedis("redis://127.0.0.1:6379", silentLogger);
    t.after(() => redis.disconnect());
    const shared = () =>
      new RedisAddressLimiter({
        redis,
        prefix: `${admin.prefix}auth:`,
        limit: 2,
        windowMs: 60_000,
        logger: silentLogger,
      });
    const options = {
      authMode: "optional" as const,
      authOverPlaintext: true,
      maxAuthFailuresPerIp: 2,
      onAuth() {
        throw SmtpError.code(535);
      },
    };
    const one = await startServer(t, { ...options, authFailureLimiter: shared() });
    const two = await startServer(t, { ...options, authFailureLimiter: shared() });
    const plain = Buffer.from("\0user\0wrong").toString("base64");
    for (const port of [one, two]) {
      const client = await RawClient.greeted(port);
      await client.command("EHLO client.test");
      assert.match(await client.command(`AUTH PLAIN ${plain}`), /^535 /);
      client.drop();
    }
    const third = await RawClient.greeted(one);
    await third.command("EHLO client.test");
    assert.match(
      await third.command(`AUTH PLAIN ${plain}`),
      /^4\d\d 4\.7\.\d /,
      "held back after 2 failures across both",
    );
    third.drop();
  });
});
