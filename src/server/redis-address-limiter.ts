/**
 * An AddressLimiter whose counts live in Redis, so that every mailgate instance sharing the Redis shares
 * the limits. It counts as MemoryAddressLimiter does (a fixed window from a key's first event; the event
 * that reaches the limit restarts it as the penalty), in one atomic script per event.
 *
 * Redis is an aid, not a dependency of mail: when it cannot answer (down, unreachable, slower than
 * `timeoutMs`) the limiter fails open (no key is held back, nothing is counted) and says so once per
 * outage, so that mail keeps flowing.
 */
import type { Redis } from "ioredis";
import type { AddressLimiter } from "./address-limiter.js";
import type { Logger } from "./options.js";

/** INCR the key; at its first event, and at the event that reaches the limit, (re)start its window. */
const HIT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 or count == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count`;

export interface RedisAddressLimiterOptions {
  /** The connection (see connectRedis); shared by the limiters of one process. */
  redis: Redis;
  /** Key prefix for this limit, e.g. "mailgate:connections:"; instances sharing limits use the same one. */
  prefix: string;
  /** Events within one window that hold a key back. */
  limit: number;
  /** Milliseconds of a window, and of the penalty. */
  windowMs: number;
  /** Where the fail-open warnings go. */
  logger: Logger;
  /**
   * Reject when Redis cannot answer, instead of failing open (nothing held back): for a limit whose
   * caller has a safe answer to an error, as AUTH's failure limit does (454). Default false.
   */
  failClosed?: boolean;
}

export class RedisAddressLimiter implements AddressLimiter {
  readonly #options: RedisAddressLimiterOptions;

  constructor(options: RedisAddressLimiterOptions) {
    this.#options = options;
  }

  async isBlocked(key: string): Promise<boolean> {
    const { redis, prefix, limit } = this.#options;
    return failOpen(this.#options, async () => Number(await redis.get(prefix + key)) >= limit);
  }

  async record(key: string): Promise<boolean> {
    const { redis, prefix, limit, windowMs } = this.#options;
    return failOpen(this.#options, async () => {
      const count = await redis.eval(HIT, 1, prefix + key, windowMs, limit);
      return Number(count) >= limit;
    });
  }
}

/** Connections whose failures were already told: one warning per outage, not one per event. */
const warned = new WeakSet<Redis>();

async function failOpen(options: RedisAddressLimiterOptions, run: () => Promise<boolean>): Promise<boolean> {
  try {
    return await run();
  } catch (error) {
    if (options.failClosed) throw error;
    if (!warned.has(options.redis)) {
      warned.add(options.redis);
      options.logger.warn(
        `Redis cannot answer (${(error as Error).message}): per-address limits are not enforced until it is back.`,
      );
      options.redis.once("ready", () => {
        warned.delete(options.redis);
        options.logger.info("Redis is back: per-address limits are enforced again.");
      });
    }
    return false;
  }
}

/**
 * A Redis connection for the limiters: commands fail at once while it is not connected (no offline queue)
 * and after `timeoutMs` when Redis is slow, so that a session never waits on Redis for longer; it
 * reconnects by itself in the background, from the start too. Waits up to `readyMs` for the first
 * connection; if Redis is not there by then, warns and returns anyway (the limiters fail open meanwhile).
 */
export async function connectRedis(
  url: string,
  logger: Logger,
  { timeoutMs = 500, readyMs = Math.max(3_000, timeoutMs) } = {},
): Promise<Redis> {
  // Loaded on first use: a program that imports mailgate without Redis does not pay for ioredis.
  const { Redis } = await import("ioredis");
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    commandTimeout: timeoutMs,
    connectTimeout: readyMs,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 5_000),
  });
  let lastError = "no answer";
  redis.on("error", (error: Error) => {
    lastError = error.message; // told through failOpen's warnings; it reconnects meanwhile
  });
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), readyMs);
    redis.once("ready", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  if (ready) logger.info(`Per-address limits are kept in Redis at ${redactedRedisUrl(url)}`);
  else {
    logger.warn(
      `Cannot reach Redis at ${redactedRedisUrl(url)} (${lastError}): per-address limits are not enforced until it is there; retrying in the background.`,
    );
  }
  return redis;
}

/** The URL without its password, for logs. */
function redactedRedisUrl(url: string): string {
  try {
    const where = new URL(url);
    if (where.password) where.password = "***";
    return where.href;
  } catch {
    return "(a URL that cannot be parsed)";
  }
}
