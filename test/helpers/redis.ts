/**
 * The Redis the tests share (127.0.0.1:6379, see ../shared/services.md), or a skip that says what to
 * start; under CI=true a missing Redis fails. Keys are under a prefix unique to the test, deleted after it.
 */
import { randomBytes } from "node:crypto";
import type { TestContext } from "node:test";
import { Redis } from "ioredis";
import { serviceOrSkip } from "./services.js";

export const REDIS_PORT = 6379;
export const REDIS_URL = `redis://127.0.0.1:${REDIS_PORT}`;

/** An admin connection and a fresh key prefix; null when the test skips. */
export async function redisOrSkip(t: TestContext): Promise<{ redis: Redis; prefix: string } | null> {
  const redis = await serviceOrSkip(
    t,
    `Redis at 127.0.0.1:${REDIS_PORT}`,
    `\`redis-server --daemonize yes --bind 127.0.0.1 --port ${REDIS_PORT} --save ""\``,
    async () => {
      const client = new Redis(REDIS_URL, {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      client.on("error", () => {});
      await client.connect().catch((error: unknown) => {
        client.disconnect();
        throw error;
      });
      return client;
    },
  );
  if (!redis) return null;
  const prefix = `mailgate-test:${randomBytes(5).toString("hex")}:`;
  t.after(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });
  return { redis, prefix };
}
