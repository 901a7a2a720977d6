/**
 * The Redis the tests share (127.0.0.1:6379, see ../shared/services.md), or a skip that says what to
 * start; under CI=true a missing Redis fails. Keys are under a prefix unique to the test, deleted after it.
 */
import { randomBytes } from "node:crypto";
import type { TestContext } from "node:test";
import { Redis } from "ioredis";

export const REDIS_PORT = 6379;
export const REDIS_URL = `redis://127.0.0.1:${REDIS_PORT}`;

/** An admin connection and a fresh key prefix; null when the test skips. */
export async function redisOrSkip(t: TestContext): Promise<{ redis: Redis; prefix: string } | null> {
  const redis = new Redis(REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on("error", () => {});
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    const what = `Redis is not reachable at 127.0.0.1:${REDIS_PORT} (${(error as Error).message})`;
    if (process.env.CI) throw new Error(`${what}; CI needs it running.`);
    t.skip(
      `${what}: start it with \`redis-server --daemonize yes --bind 127.0.0.1 --port ${REDIS_PORT} --save ""\``,
    );
    return null;
  }
  const prefix = `mailgate-test:${randomBytes(5).toString("hex")}:`;
  t.after(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });
  return { redis, prefix };
}
