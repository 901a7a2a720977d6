/**
 * Session-ticket keys: where they come from (a TicketKeySource), the default source that rotates a
 * random key, and the checks on a rotation interval and on a delivered key.
 */
import { randomBytes } from "node:crypto";

/** Milliseconds between two session-ticket keys by default: 12 hours. */
export const DEFAULT_TICKET_KEY_ROTATION = 12 * 60 * 60 * 1000;

/** The range a rotation interval may take: a minute (a value in seconds fails) to setInterval's limit. */
export const TICKET_KEY_ROTATION_RANGE = { min: 60_000, max: 2_147_483_647 } as const;

/** Node's session-ticket key: a 16-byte key name, a 16-byte HMAC secret and a 16-byte AES key. */
const TICKET_KEY_BYTES = 48;

/**
 * Where the session-ticket key comes from. A TLS 1.2 ticket carries the session's master secret
 * encrypted under this key, so whoever learns the key can decrypt every TLS 1.2 session whose ticket
 * it made; replacing the key bounds that exposure. Node holds one key per context, so a new key
 * makes the tickets issued before it unusable: their clients do one full handshake and get a new one.
 *
 * The default source (rotatingTicketKeys) is private to one provider. Processes that serve the same
 * clients (workers sharing a listening socket) would give each provider a source that delivers the
 * keys their primary hands out, so that a ticket from one worker resumes on another.
 */
export interface TicketKeySource {
  /**
   * Starts delivering keys: calls `use` with each 48-byte key, the first preferably at once (until
   * then the provider uses a random key of its own). Returns the function that stops the source
   * (clears its timers, unsubscribes); the provider calls it from close(). `use` throws a TypeError
   * for a key that is not 48 bytes long.
   */
  start(use: (key: Buffer) => void): () => void;
}

/** Checks a rotation interval in milliseconds; otherwise throws one sentence naming the option. */
export function validateTicketKeyRotation(value: unknown): number {
  const { min, max } = TICKET_KEY_ROTATION_RANGE;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Invalid tlsTicketKeyRotation ${JSON.stringify(value)}: give the milliseconds between two session-ticket keys, from ${min} (a minute) to ${max} (about 24.8 days).`,
    );
  }
  return value;
}

/** A random key, for a provider's first contexts before its source delivers one. */
export function randomTicketKey(): Buffer {
  return randomBytes(TICKET_KEY_BYTES);
}

/** The default source: a random key at once, and a new one every `intervalMs` (a timer that is unref()ed). */
export function rotatingTicketKeys(intervalMs: number = DEFAULT_TICKET_KEY_ROTATION): TicketKeySource {
  const interval = validateTicketKeyRotation(intervalMs);
  return {
    start(use) {
      use(randomTicketKey());
      const timer = setInterval(() => use(randomTicketKey()), interval);
      timer.unref(); // a rotation due never keeps the process alive
      return () => clearInterval(timer);
    },
  };
}

/** A copy of a key a TicketKeySource delivers, checked: Node takes exactly 48 bytes. */
export function checkTicketKey(key: Buffer): Buffer {
  if (!Buffer.isBuffer(key) || key.length !== TICKET_KEY_BYTES) {
    throw new TypeError(
      `A session-ticket key must be a Buffer of ${TICKET_KEY_BYTES} bytes (got ${Buffer.isBuffer(key) ? `${key.length} bytes` : typeof key}).`,
    );
  }
  return Buffer.from(key);
}
