/**
 * Limits per client address across connections (design §5: every attacker-controlled cost is bounded per
 * connection and per client address), as Postfix's anvil does: events are counted per key (clientKey: an
 * IPv4 address, an IPv6 /64), and a key that reaches the limit is held back for a penalty time. AUTH
 * failures are counted this way (maxAuthFailuresPerIp), by address and never by account name, which
 * would let anyone lock a victim out.
 *
 * The interface may answer with promises, so that a shared store (Redis, for many instances) can back
 * it; the in-memory limiter answers at once, which the session uses without a trip through a promise.
 */
import type { AuthFailureLimit } from "../protocol/auth-exchange.js";
import type { SessionContext } from "../protocol/context.js";
import { SmtpError } from "../protocol/errors.js";
import type { Awaitable } from "../protocol/maybe-async.js";
import { sessionClientKey } from "./client-key.js";

export interface AddressLimiter {
  /** True while `key` is held back: it reached the limit and its penalty has not run out. */
  isBlocked(key: string): Awaitable<boolean>;
  /** Counts one event for `key`; true when the key has now reached the limit (held back from now on). */
  record(key: string): Awaitable<boolean>;
  /**
   * Optional, for a limiter shared by several processes (the workers of runWorkers): runs `check` when no
   * check of `key` runs in any of them, so that checks racing in different processes cannot all pass
   * isBlocked before any failure is recorded. Within one process the checks of a key already run one at
   * a time.
   */
  exclusive?<T>(key: string, check: () => Promise<T>): Promise<T>;
}

export interface MemoryAddressLimiterOptions {
  /** Events within one window that hold a key back. */
  limit: number;
  /** Milliseconds of a window, and of the penalty. */
  windowMs: number;
  /** Keys remembered at most (default 100,000); beyond, the oldest is forgotten. */
  maxKeys?: number;
  /** A monotonic clock in milliseconds (default performance.now); injectable for tests. */
  now?: () => number;
}

interface Entry {
  count: number;
  /** When the window (or the penalty, once count reached the limit) ends. */
  expires: number;
}

/**
 * Counts in a fixed window that opens at a key's first event and lasts windowMs; the event that reaches
 * the limit restarts it as the penalty (windowMs from that event), during which isBlocked is true. A
 * Redis backend does the same with INCR and PEXPIRE. At most 2 x (limit - 1) events fit in any windowMs
 * without a penalty, when they straddle the end of one window and the start of the next.
 *
 * Memory is bounded: every entry lives for windowMs at most, and at most maxKeys are kept. The Map is
 * in order of expiry (an entry is re-inserted whenever its window starts again, and every window has the
 * same length), so expired entries are swept from its front, and the front is also the entry to forget
 * when the Map is full: the one nearest its end.
 */
export class MemoryAddressLimiter implements AddressLimiter {
  readonly #entries = new Map<string, Entry>();
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;

  constructor({
    limit,
    windowMs,
    maxKeys = 100_000,
    now = () => performance.now(),
  }: MemoryAddressLimiterOptions) {
    for (const [name, value] of [
      ["limit", limit],
      ["windowMs", windowMs],
      ["maxKeys", maxKeys],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(
          `Invalid MemoryAddressLimiter ${name}: ${value}; it must be an integer of at least 1.`,
        );
      }
    }
    this.#limit = limit;
    this.#windowMs = windowMs;
    this.#maxKeys = maxKeys;
    this.#now = now;
  }

  /** Keys remembered now (expired ones included until the next record()). */
  get size(): number {
    return this.#entries.size;
  }

  isBlocked(key: string): boolean {
    const entry = this.#entries.get(key);
    return entry !== undefined && entry.count >= this.#limit && entry.expires > this.#now();
  }

  record(key: string): boolean {
    const now = this.#now();
    this.#sweep(now);
    let entry = this.#entries.get(key);
    if (entry === undefined || entry.expires <= now) {
      this.#entries.delete(key);
      if (this.#entries.size >= this.#maxKeys) this.#forgetOldest();
      entry = { count: 0, expires: now + this.#windowMs };
      this.#entries.set(key, entry);
    }
    entry.count++;
    if (entry.count === this.#limit) {
      // The penalty: a whole window from this event, the entry moving to the back of the Map with it.
      entry.expires = now + this.#windowMs;
      this.#entries.delete(key);
      this.#entries.set(key, entry);
    }
    return entry.count >= this.#limit;
  }

  #sweep(now: number): void {
    for (const [key, entry] of this.#entries) {
      if (entry.expires > now) return;
      this.#entries.delete(key);
    }
  }

  #forgetOldest(): void {
    for (const key of this.#entries.keys()) {
      this.#entries.delete(key);
      return;
    }
  }
}

/**
 * The session's view of a limiter for AUTH failures: the client is ctx.server.remoteIp at the time of
 * AUTH, counted under its clientKey. A UNIX socket peer has no address: it is neither counted nor held
 * back (local clients would otherwise all share one count).
 */
export function authFailuresByAddress(limiter: AddressLimiter): AuthFailureLimit {
  /** The last check queued per client key; a key leaves the map when its last check is done. */
  const turns = new Map<string, Promise<unknown>>();
  /** Checks queued or running per client key: a client may not queue more than a few. */
  const queued = new Map<string, number>();
  return {
    isBlocked: (ctx) => ctx.server.remoteIp !== "" && limiter.isBlocked(sessionClientKey(ctx)),
    record: (ctx) => ctx.server.remoteIp !== "" && limiter.record(sessionClientKey(ctx)),
    exclusive<T>(ctx: SessionContext, check: () => Promise<T>): Promise<T> {
      if (ctx.server.remoteIp === "") return check();
      const key = sessionClientKey(ctx);
      const count = queued.get(key) ?? 0;
      if (count >= CHECKS_QUEUED_PER_CLIENT) {
        // Not counted as a failure (the client may be a busy NAT): a temporary refusal, at once.
        return Promise.reject(
          new SmtpError(454, "Too many authentication attempts at once from your address", "4.7.0"),
        );
      }
      queued.set(key, count + 1);
      const turn = limiter.exclusive ? () => (limiter.exclusive as Exclusive)(key, check) : check;
      const run = (turns.get(key) ?? Promise.resolve()).then(turn, turn);
      const done = run.then(ignore, ignore);
      turns.set(key, done);
      void done.then(() => {
        if (turns.get(key) === done) turns.delete(key);
        const left = (queued.get(key) ?? 1) - 1;
        if (left > 0) queued.set(key, left);
        else queued.delete(key);
      });
      return run;
    },
  };
}

type Exclusive = NonNullable<AddressLimiter["exclusive"]>;

function ignore(): void {}

/**
 * AUTH checks one client address may have queued or running at once. One at a time runs; a few more may
 * wait (a NAT's users, a webmail front end's pool); beyond, 454 at once, so that a flood from one address
 * neither builds a backlog nor holds a stop.
 */
const CHECKS_QUEUED_PER_CLIENT = 4;
