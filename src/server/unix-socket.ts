/**
 * Making a UNIX domain socket path ready to listen on: the checks that turn the usual mistakes (missing
 * directory, a live server already there, a stale file left by a crash) into one clear sentence.
 */
import { lstat, unlink } from "node:fs/promises";
import { connect } from "node:net";
import { dirname } from "node:path";

/** Resolves true when a server accepts connections on `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect({ path });
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
}

/** Throws one sentence unless `path` can be listened on; removes a stale socket when allowed. */
export async function prepareSocketPath(path: string, replaceStale: boolean): Promise<void> {
  const fail = (why: string): never => {
    throw new Error(`Cannot listen on UNIX socket ${path}: ${why}`);
  };
  const parent = await lstat(dirname(path)).catch(() => null);
  if (!parent?.isDirectory()) fail(`the directory ${dirname(path)} does not exist; create it first.`);
  const existing = await lstat(path).catch(() => null);
  if (!existing) return;
  if (!existing.isSocket())
    fail("a file that is not a socket is in the way; remove it or choose another path.");
  if (await answers(path)) fail("a server is already listening on it; stop it or choose another path.");
  if (!replaceStale) {
    fail(
      "a stale socket file is there (left by a process that did not stop cleanly); remove it, or set socketReplaceStale.",
    );
  }
  await unlink(path);
}
