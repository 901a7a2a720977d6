/**
 * Staging: a sink gets a large message only once it has been received whole. `mailgate serve` hands a
 * message of up to bufferMessagesUpTo over in memory (a WholeMessage); a larger one, which it streams as it
 * arrives, is written here to a file of its own first, and the sink reads that file at its own pace.
 *
 * Without it, a sink works while the SMTP client sends: it holds a place in its window for as long as the
 * client takes (a few clients sending slowly held every place of the HTTP sink's, and everyone else got
 * 451), and the broker sinks, which publish a message whole, held it in memory meanwhile (40 sessions
 * sending 24 MB each without ever ending took a server to 1 GB). Staged, the client's pace costs disk
 * space (at most what the sessions under way send, each within maxMessageSize), not the sink's places or
 * memory; and the complete messages handed to the sink at once are bounded in bytes (maxBytes), so that
 * many large ones finishing together wait in their files rather than in memory.
 *
 * The files are in a private directory (mode 0700, made at open, made again if something removed it, and
 * removed at close; one left by a process of this host that was killed is removed by the next open)
 * under the given parent, each deleted once its delivery has settled. They are not flushed to disk: the
 * 250 still waits for the sink (or the spool) to hold the message.
 */
import { createWriteStream } from "node:fs";
import { lstat, mkdtemp, readdir, rm } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { StagedMessage } from "../store/staged-message.js";
import type { MessageStore } from "../store/store.js";
import { WholeMessage } from "../store/whole-message.js";
import { wrapStore } from "../store/wrapped-store.js";
import { describeError, SinkUnavailable } from "./sink-error.js";
import { InFlightWindow } from "./window.js";

export interface StagingOptions {
  /**
   * Bytes of staged messages the store may hold at once (the broker sinks read each into memory to
   * publish it); further ones wait in their files, first come first served. One larger than this goes
   * alone. Default 134,217,728 (128 MiB).
   */
  maxBytes?: number;
  /** Milliseconds a staged message may wait for room before it is answered 451 (default 10,000). */
  waitTimeout?: number;
}

/**
 * `store`, whose deliveries of streamed messages are staged in a new directory under `parent` first.
 * Its close() closes `store`, then removes the directory.
 */
export async function stagingStore(
  store: MessageStore,
  parent: string,
  { maxBytes = 128 * 1024 * 1024, waitTimeout = 10_000 }: StagingOptions = {},
): Promise<MessageStore> {
  for (const [name, value] of [
    ["maxBytes", maxBytes],
    ["waitTimeout", waitTimeout],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`Invalid staging ${name}: ${value}; it must be a whole number of at least 1.`);
    }
  }
  const room = new InFlightWindow(maxBytes);
  /** A place for `bytes` in the room, waited for up to waitTimeout (a timer that keeps the process up). */
  const waitForRoom = async (bytes: number): Promise<() => void> => {
    const gaveUp = new AbortController();
    const timer = setTimeout(() => gaveUp.abort(), waitTimeout);
    try {
      return await room.enter(gaveUp.signal, bytes);
    } catch {
      throw new SinkUnavailable(
        "Staging",
        `no room for a message within ${waitTimeout} ms (${maxBytes} bytes of staged messages are with the sink)`,
      );
    } finally {
      clearTimeout(timer);
    }
  };
  await removeOrphans(parent);
  const name = `${PREFIX}${process.pid}@${hostname()}-`;
  let directory = await mkdtemp(join(parent, name));
  let files = 0;
  /** A new directory being made (deliveries that find it gone at once share it), or undefined. */
  let remaking: Promise<string> | undefined;
  /** The directory, made again if it went away (a cleaner of old files in /tmp, an operator). */
  const usableDirectory = async (): Promise<string> => {
    if (remaking) return remaking;
    if (await isOwnDirectory(directory)) return directory;
    remaking ??= mkdtemp(join(parent, name))
      .then((made) => {
        directory = made;
        return made;
      })
      .finally(() => {
        remaking = undefined;
      });
    return remaking;
  };
  return wrapStore(
    store,
    async (envelope, message) => {
      if (message instanceof WholeMessage || message instanceof StagedMessage) {
        return store.deliver(envelope, message);
      }
      const staging = await usableDirectory().catch((error: unknown) => {
        const why = (error as NodeJS.ErrnoException).code ?? describeError(error);
        throw new SinkUnavailable("Staging", `cannot make a directory in ${parent}: ${why}`);
      });
      const path = join(staging, String(++files));
      try {
        const staged = await stage(message, path);
        const leave = room.tryEnter(staged.size) ?? (await waitForRoom(staged.size));
        try {
          return await store.deliver(envelope, staged);
        } finally {
          leave();
        }
      } finally {
        await rm(path, { force: true });
      }
    },
    async () => {
      try {
        await store.close?.();
      } finally {
        await rm(directory, { recursive: true, force: true });
      }
    },
  );
}

/**
 * A staging directory's name: this, the pid and host name of the process that made it, "-", then
 * mkdtemp's six characters.
 */
const PREFIX = "mailgate-stage-";

/**
 * Removes the staging directories under `parent` left by a process of this host that is gone (killed
 * before it could remove its own): what they hold was never acknowledged, so nothing is lost with them.
 * Only real directories of this user are touched (never a symbolic link, nor what another user made to
 * look like one: `parent` is usually the shared /tmp).
 */
async function removeOrphans(parent: string): Promise<void> {
  if (typeof process.getuid !== "function") return;
  const names = await readdir(parent).catch(() => [] as string[]);
  const host = hostname();
  for (const name of names) {
    const match = /^mailgate-stage-(\d+)@(.+)-[^-]{6}$/.exec(name);
    const pid = Number(match?.[1]);
    if (!match || match[2] !== host || pid === process.pid || isRunning(pid)) continue;
    const path = join(parent, name);
    if (await isOwnDirectory(path)) await rm(path, { recursive: true, force: true }).catch(() => {});
  }
}

/** A directory (not a symbolic link to one) of this process's user, mode 0700. */
async function isOwnDirectory(path: string): Promise<boolean> {
  const stats = await lstat(path).catch(() => undefined);
  if (!stats?.isDirectory()) return false;
  return process.getuid === undefined || (stats.uid === process.getuid() && (stats.mode & 0o777) === 0o700);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"; // alive, another user's
  }
}

/**
 * Writes `message` to a new file at `path`. Rejects with the message's own error if it fails (the session
 * aborted it), or with SinkUnavailable (451 4.3.0, and a spool behind would not do better) if the file
 * cannot be written: a full disk, a directory removed.
 */
async function stage(message: AsyncIterable<Buffer>, path: string): Promise<StagedMessage> {
  const file = createWriteStream(path, { flags: "wx", mode: 0o600 });
  let sourceError: { error: unknown } | undefined;
  async function* source() {
    try {
      yield* message;
    } catch (error) {
      sourceError = { error };
      throw error;
    }
  }
  try {
    await pipeline(source(), file);
  } catch (error) {
    if (sourceError) throw sourceError.error;
    // The same words for every message (no file name): the log bounds repeated failures by their text.
    const why = (error as NodeJS.ErrnoException).code ?? describeError(error);
    throw new SinkUnavailable("Staging", `cannot write a file in ${dirname(path)}: ${why}`);
  }
  return new StagedMessage(path, file.bytesWritten);
}
