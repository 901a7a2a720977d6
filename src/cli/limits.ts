/**
 * The per-address limits of `mailgate serve` beyond the server's own: connections and messages per
 * minute (--connections-per-minute, --messages-per-minute), kept in memory (in the primary's, for all
 * workers, with --workers) or, with --redis, in Redis so that every instance sharing it shares them (the
 * AUTH failure limit too). Redis failing means the limits fail open: mail keeps flowing.
 */
import type { Redis } from "ioredis";
import type { PrimaryServices } from "../cluster/run-workers.js";
import type { SessionContext } from "../protocol/context.js";
import type { SmtpServerHooks } from "../protocol/hooks.js";
import type { AddressLimiter } from "../server/address-limiter.js";
import type { Logger, ServerSettings } from "../server/options.js";
import { clientRateLimits, type RateLimitName } from "../server/rate-limits.js";
import { connectRedis, RedisAddressLimiter } from "../server/redis-address-limiter.js";

export interface LimitFlags {
  connectionsPerMinute: number;
  messagesPerMinute: number;
  /** --redis URL (or MAILGATE_REDIS), if given. */
  redis: string | undefined;
  /** --redis-prefix: the start of every key; instances that share limits use the same. */
  redisPrefix: string;
  /** --redis-timeout: milliseconds a Redis command may take before the limits fail open for it. */
  redisTimeout: number;
}

export interface OpenedLimits {
  hooks: Pick<SmtpServerHooks, "onConnect" | "onMailFrom">;
  authFailureLimiter: AddressLimiter | undefined;
  close(): Promise<void>;
}

/**
 * @param settings the server's resolved settings (for the AUTH failure limit, shared with --redis)
 * @param refused told about each rate-limit refusal, for the log
 * @param primary in a worker: the primary, which keeps the counts for all workers when Redis does not
 */
export async function openLimits(
  flags: LimitFlags,
  settings: Pick<ServerSettings, "maxAuthFailuresPerIp" | "authFailureWindow">,
  logger: Logger,
  refused: (ctx: SessionContext, name: RateLimitName) => void,
  primary?: PrimaryServices,
): Promise<OpenedLimits> {
  const redis: Redis | undefined =
    flags.redis === undefined
      ? undefined
      : await connectRedis(flags.redis, logger, { timeoutMs: flags.redisTimeout });
  const shared = (name: string, limit: number, windowMs: number, failClosed = false) =>
    new RedisAddressLimiter({
      redis: redis as Redis,
      prefix: `${flags.redisPrefix}${name}:`,
      limit,
      windowMs,
      logger,
      failClosed,
    });
  const hooks = clientRateLimits({
    connections: flags.connectionsPerMinute,
    messages: flags.messagesPerMinute,
    ...(redis ? { limiter: shared } : primary && { limiter: primary.addressLimiter }),
    onRefused: refused,
  });
  const { maxAuthFailuresPerIp, authFailureWindow } = settings;
  return {
    hooks,
    authFailureLimiter:
      redis && maxAuthFailuresPerIp > 0
        ? // Fails closed: AUTH answers 454 while Redis cannot say whether the address is held back (an
          // attacker able to stall Redis must not get unlimited guesses).
          shared("auth-failures", maxAuthFailuresPerIp, authFailureWindow, true)
        : undefined,
    async close() {
      await redis?.quit().catch(() => redis.disconnect());
    },
  };
}
