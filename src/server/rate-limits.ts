/**
 * Rate limits per client address, as hooks: at most N connections and M messages (MAIL FROM) per window
 * from one address (its clientKey: IPv4 as it is, IPv6 by /64; behind a PROXY header, the address it
 * names). The connection or transaction over the limit gets `421 4.7.0` and the connection closes; the
 * address is then held back for one window from that refusal (a client that keeps trying stays out).
 * UNIX socket peers are never limited.
 *
 * The counts live in an AddressLimiter: in memory by default (one process), or shared by every instance
 * through Redis (RedisAddressLimiter). `mailgate serve` uses these hooks for --connections-per-minute
 * and --messages-per-minute; a library user spreads them into the server's options.
 */
import type { SessionContext } from "../protocol/context.js";
import { SmtpError } from "../protocol/errors.js";
import type { SmtpServerHooks } from "../protocol/hooks.js";
import { type AddressLimiter, MemoryAddressLimiter } from "./address-limiter.js";
import { sessionClientKey } from "./client-key.js";

export type RateLimitName = "connections" | "messages";

export interface ClientRateLimitOptions {
  /** Connections one client address may open per window; 0 or absent = no limit. */
  connections?: number;
  /** Transactions (MAIL FROM) one client address may start per window; 0 or absent = no limit. */
  messages?: number;
  /** The window in milliseconds (default 60,000: the limits are per minute). */
  windowMs?: number;
  /**
   * Makes the limiter that keeps one limit's counts: `limit` events in `windowMs` hold a key back. The
   * default keeps them in this process's memory (MemoryAddressLimiter).
   */
  limiter?: (name: RateLimitName, limit: number, windowMs: number) => AddressLimiter;
  /** Told about each refusal (for logs and metrics). */
  onRefused?: (ctx: SessionContext, name: RateLimitName) => void;
}

const TEXT: Record<RateLimitName, string> = {
  connections: "Too many connections from your address, try again later",
  messages: "Too many messages from your address, try again later",
};

/** The hooks that enforce the limits (only those of the limits asked for). */
export function clientRateLimits(
  options: ClientRateLimitOptions,
): Pick<SmtpServerHooks, "onConnect" | "onMailFrom"> {
  const windowMs = options.windowMs ?? 60_000;
  const makeLimiter =
    options.limiter ?? ((_name, limit, window) => new MemoryAddressLimiter({ limit, windowMs: window }));
  const guard = (name: RateLimitName, limit: number | undefined) => {
    if (limit === undefined || limit === 0) return undefined;
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new RangeError(`Invalid rate limit ${name}: ${limit}; it must be a whole number (0 = none).`);
    }
    // The limiter holds a key back at its limit-th event: the one after the allowed ones is refused.
    const limiter = makeLimiter(name, limit + 1, windowMs);
    return async (ctx: SessionContext) => {
      const key = sessionClientKey(ctx);
      if (key === "" || !(await limiter.record(key))) return;
      options.onRefused?.(ctx, name);
      throw new SmtpError(
        421,
        TEXT[name],
        "4.7.0",
        `421 4.7.0 rate limit: ${name} per ${windowMs} ms from ${key}`,
      );
    };
  };
  const connections = guard("connections", options.connections);
  const messages = guard("messages", options.messages);
  return {
    ...(connections && { onConnect: connections }),
    ...(messages && { onMailFrom: messages }),
  };
}
