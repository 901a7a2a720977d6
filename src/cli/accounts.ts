/**
 * Accounts for `mailgate serve --auth-users FILE`: one "user:hash" line per account, where the hash is
 * scrypt (made by `mailgate hash-password`), never a plaintext password. Lines starting with # are
 * comments.
 *
 * A check costs 32 MiB and a CPU-bound 0.1-0.2 s on one of libuv's 4 threads, the pool that the Maildir
 * store's file I/O runs on too. Unbounded, an AUTH flood queued checks ahead of every file operation and
 * stalled deliveries for half a minute (issue 16). So checks run PASSWORD_CHECKS_AT_ONCE at a time, at
 * most PASSWORD_CHECKS_WAITING wait behind them, and one more is refused at once with PasswordChecksBusy
 * (AUTH answers 454 4.7.0, RFC 4954: the client tries again later) rather than queued without bound.
 *
 * One check at a time leaves 3 of the pool's threads to file I/O, so it cannot be starved of them, and on
 * 2 cores one stays for the event loop. A dedicated worker thread (scryptSync there) would keep checks
 * off the pool entirely; measured with bench/auth-flood.ts (--max-auth-failures-per-ip 0) it did no
 * better (a 320 KB delivery under the flood took 0.03-0.13 s with it, 0.03-0.27 s on the pool, 3 runs of
 * 5 each; 18-30 s unbounded), so the pool it is, without a second isolate's memory and a thread to
 * restart when it dies.
 *
 * The bound is shared by every client, so guesses from many addresses (a few per address, under each
 * one's maxAuthFailuresPerIp) could keep the queue full and every user out with 454. A user and password
 * that passed a check, or was recognised so, in the last VERIFIED_FOR_MS are therefore recognised without
 * one (and without waiting): by an HMAC of the pair under a key drawn at start, never the password
 * itself. A mail client that logs in every few minutes is served through such a flood; only a first
 * login waits for a place.
 */
import { createHmac, randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";

const scryptAsync = promisify(scrypt) as (
  password: string,
  salt: Buffer,
  length: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

/** OWASP's scrypt minimum (N=2^17, r=8, p=1) costs 128 MiB per check; 2^15 keeps AUTH bursts affordable. */
const COST = { N: 2 ** 15, r: 8, p: 1 };
const KEY_LENGTH = 32;

function maxmem(N: number, r: number): number {
  return 256 * N * r;
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, KEY_LENGTH, { ...COST, maxmem: maxmem(COST.N, COST.r) });
  return `scrypt$${COST.N}$${COST.r}$${COST.p}$${salt.toString("base64")}$${key.toString("base64")}`;
}

async function verifyHash(password: string, hash: string): Promise<boolean> {
  const [scheme, n, r, p, salt, key] = hash.split("$");
  if (scheme !== "scrypt" || !salt || !key) return false;
  const expected = Buffer.from(key, "base64");
  const options = { N: Number(n), r: Number(r), p: Number(p), maxmem: maxmem(Number(n), Number(r)) };
  const actual = await scryptAsync(password, Buffer.from(salt, "base64"), expected.length, options);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** Password checks computed at once (each holds one thread of libuv's pool). */
export const PASSWORD_CHECKS_AT_ONCE = 1;
/** Checks that may wait for one (about 2 s of work at most); one more is refused at once. */
export const PASSWORD_CHECKS_WAITING = 16;

/** Thrown by verify() when PASSWORD_CHECKS_WAITING checks already wait: answer 454 4.7.0. */
export class PasswordChecksBusy extends Error {
  constructor() {
    super(`${PASSWORD_CHECKS_WAITING} password checks are already waiting`);
    this.name = "PasswordChecksBusy";
  }
}

/** Runs tasks `atOnce` at a time; at most `waiting` wait for a turn, one more is refused at once. */
class BoundedQueue {
  private running = 0;
  private readonly queue: (() => void)[] = [];

  constructor(
    private readonly atOnce: number,
    private readonly waiting: number,
  ) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running < this.atOnce) this.running++;
    else if (this.queue.length < this.waiting) {
      // The task that ends hands its turn over: `running` stays as it is.
      await new Promise<void>((resolve) => this.queue.push(resolve));
    } else throw new PasswordChecksBusy();
    try {
      return await task();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.running--;
    }
  }
}

/** How long a user and password that passed a check are recognised without another. */
export const VERIFIED_FOR_MS = 15 * 60_000;
/** Pairs recognised at most; beyond, the oldest is forgotten. */
const MAX_VERIFIED = 10_000;

export class Accounts {
  private readonly checks = new BoundedQueue(PASSWORD_CHECKS_AT_ONCE, PASSWORD_CHECKS_WAITING);
  /** HMAC(user, password) of recent successful checks, oldest first, and when each passed. */
  private readonly verified = new Map<string, number>();
  private readonly verifiedKey = randomBytes(32);

  private constructor(private readonly hashes: Map<string, string>) {}

  /** Reads the file; a bad line is reported with its number, the file with what to do. */
  static async load(path: string): Promise<Accounts> {
    const text = await readFile(path, "utf8").catch((error: Error) => {
      throw new Error(`Cannot read the accounts file ${path}: ${error.message}.`);
    });
    const hashes = new Map<string, string>();
    text.split(/\r?\n/).forEach((raw, index) => {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) return;
      const colon = line.indexOf(":");
      const user = line.slice(0, colon);
      const hash = line.slice(colon + 1);
      if (colon <= 0 || !/^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/.test(hash)) {
        throw new Error(
          `Invalid line ${index + 1} in the accounts file ${path}: expected "user:scrypt$..." (make the hash with mailgate hash-password).`,
        );
      }
      hashes.set(user, hash);
    });
    return new Accounts(hashes);
  }

  get size(): number {
    return this.hashes.size;
  }

  /**
   * True when `user` exists and `password` matches (the same work is done for unknown users). Rejects with
   * PasswordChecksBusy, at once, when too many checks already wait.
   */
  async verify(user: string, password: string): Promise<boolean> {
    const hash = this.hashes.get(user);
    // The user's length first: "a" + "\0b" and "a\0" + "b" are different pairs.
    const pair = createHmac("sha256", this.verifiedKey)
      .update(`${Buffer.byteLength(user)}:${user}`)
      .update(password)
      .digest("base64");
    const passed = this.verified.get(pair);
    const recognised =
      hash !== undefined && passed !== undefined && performance.now() - passed < VERIFIED_FOR_MS;
    if (!recognised) {
      const matches = await this.checks.run(() => verifyHash(password, hash ?? DUMMY_HASH));
      if (hash === undefined || !matches) return false;
    }
    // Each login keeps the pair recognised (the accounts cannot change while the server runs); re-inserted
    // last, so that the Map's order is that of the logins and the oldest goes first.
    this.verified.delete(pair);
    this.verified.set(pair, performance.now());
    if (this.verified.size > MAX_VERIFIED) this.verified.delete(this.verified.keys().next().value as string);
    return true;
  }
}

/** Verified for unknown users so that their answer takes as long as a known user's. */
const DUMMY_HASH = `scrypt$${COST.N}$${COST.r}$${COST.p}$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=`;
