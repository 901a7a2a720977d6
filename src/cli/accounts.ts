/**
 * Accounts for `mailgate serve --auth-users FILE`: one "user:hash" line per account, where the hash is
 * scrypt (made by `mailgate hash-password`), never a plaintext password. Lines starting with # are
 * comments.
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
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

export class Accounts {
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

  /** True when `user` exists and `password` matches (the same work is done for unknown users). */
  async verify(user: string, password: string): Promise<boolean> {
    const hash = this.hashes.get(user);
    const matches = await verifyHash(password, hash ?? DUMMY_HASH);
    return hash !== undefined && matches;
  }
}

/** Verified for unknown users so that their answer takes as long as a known user's. */
const DUMMY_HASH = `scrypt$${COST.N}$${COST.r}$${COST.p}$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=`;
