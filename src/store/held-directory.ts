/**
 * A Maildir directory held open for its flushes (fsync of new/, syncfs of the file system), which must
 * reach what readers of its path see. A descriptor stays on the directory it was opened on: after
 * `rm -rf mail && mkdir -p mail/new`, or a file system mounted at the path, a flush through it reaches a
 * deleted or hidden directory, or another file system, while the files go where the path leads now. So
 * the holder follows the path to its new directory before it writes, and checks after its flushes that
 * nothing moved meanwhile. A directory is known by (st_dev, st_ino): held open, its inode cannot be freed
 * and its number given to another.
 *
 * Followed rather than refused until a restart: mail flows again as soon as the new Maildir is usable, as
 * after any other fault, and the new descriptor is still opened before the writes it must flush. Never
 * made again: a Maildir that an administrator deleted fails deliveries until there is one again, instead
 * of silently appearing anew (perhaps on the file system under an unmounted disk).
 */
import { type BigIntStats, closeSync, fstatSync, openSync, statSync } from "node:fs";
import { type FileHandle, open, stat } from "node:fs/promises";

/** Why a delivery failed whose Maildir was replaced while it was stored. */
export function maildirReplaced(directory: string): Error {
  return new Error(
    `The Maildir "${directory}" was replaced (deleted and made again, or mounted over) while the message ` +
      "was stored, so its flushes may have missed it: it was not acknowledged.",
  );
}

function sameDirectory(a: BigIntStats, b: BigIntStats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/** With blocking calls, for the writer thread, which does nothing else meanwhile. */
export class HeldDirectory {
  readonly #path: string;
  #fd: number;
  #identity: BigIntStats;

  /** Opens `path`; throws if it cannot (ENOENT...). */
  constructor(path: string) {
    this.#path = path;
    this.#fd = openSync(path, "r");
    this.#identity = fstatSync(this.#fd, { bigint: true });
  }

  /** The descriptor of the directory held now. */
  get fd(): number {
    return this.#fd;
  }

  /** Whether the path still leads to the directory held. */
  isCurrent(): boolean {
    const named = statSync(this.#path, { bigint: true, throwIfNoEntry: false });
    return named !== undefined && sameDirectory(named, this.#identity);
  }

  /** Holds the directory the path leads to now, if it is another one; throws if it leads to none. */
  follow(): void {
    if (this.isCurrent()) return;
    const fd = openSync(this.#path, "r");
    const identity = fstatSync(fd, { bigint: true });
    closeSync(this.#fd);
    this.#fd = fd;
    this.#identity = identity;
  }

  close(): void {
    closeSync(this.#fd);
  }
}

/** One directory as held by a FollowedDirectory: what a delivery checks its flushes against. */
export interface Held {
  readonly handle: FileHandle;
  readonly identity: BigIntStats;
}

/**
 * With promises, for the SMTP thread. Its descriptor may be in use by a flush when the path moves on, so
 * each delivery takes the Held it writes under (follow) and checks afterwards that it was never replaced
 * (holds): then every flush it waited for went through that directory.
 */
export class FollowedDirectory {
  readonly #path: string;
  #held: Held;
  /** A re-open in progress, shared by the deliveries that found the path moved. */
  #following: Promise<Held> | undefined;

  private constructor(path: string, held: Held) {
    this.#path = path;
    this.#held = held;
  }

  /** Opens `path`; rejects if it cannot. */
  static async open(path: string): Promise<FollowedDirectory> {
    return new FollowedDirectory(path, await hold(path));
  }

  /** The descriptor of the directory held now. */
  get fd(): number {
    return this.#held.handle.fd;
  }

  /** The directory held, first re-opened if the path leads to another one now; rejects if it leads to none. */
  async follow(): Promise<Held> {
    const named = await stat(this.#path, { bigint: true });
    if (sameDirectory(named, this.#held.identity)) return this.#held;
    this.#following ??= this.#reopen().finally(() => {
      this.#following = undefined;
    });
    return this.#following;
  }

  /** Whether `held` is still the directory held: if so, every use of `fd` since it was taken went to it. */
  holds(held: Held): boolean {
    return held === this.#held;
  }

  async close(): Promise<void> {
    await this.#held.handle.close();
  }

  async #reopen(): Promise<Held> {
    const previous = this.#held;
    this.#held = await hold(this.#path);
    // A flush may still be on its way with the old descriptor: whatever it reaches, the deliveries that
    // wait for it took the old Held, and fail their check.
    await previous.handle.close();
    return this.#held;
  }
}

async function hold(path: string): Promise<Held> {
  const handle = await open(path, "r");
  try {
    return { handle, identity: await handle.stat({ bigint: true }) };
  } catch (error) {
    await handle.close();
    throw error;
  }
}
