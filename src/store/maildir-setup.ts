/**
 * Getting a Maildir ready before the first delivery: its three directories exist, this process can
 * create files in tmp/ and rename them into new/, and what a crash left in tmp/ long ago is removed.
 * Every problem is found here, at start, as one sentence, instead of as a 451 for every message.
 */
import { constants } from "node:fs";
import { access, mkdir, open, readdir, stat, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";

/** The Maildir rule (qmail, Dovecot): files in tmp/ untouched for 36 hours are leftovers of a crash. */
const STALE_TMP_MS = 36 * 60 * 60 * 1000;

/**
 * Creates `directory/{tmp,new,cur}` if needed (mode 0700: mail is private) and checks that this process
 * may write there; throws "Cannot use Maildir ..." naming the cause.
 */
export async function prepareMaildir(directory: string): Promise<void> {
  try {
    for (const sub of ["tmp", "new", "cur"]) await makeDirectory(join(directory, sub), 0o700);
  } catch (error) {
    throw new Error(`Cannot use Maildir "${directory}": ${(error as Error).message}.`, { cause: error });
  }
  await checkMaildirWritable(directory);
  await removeStaleTemporaryFiles(join(directory, "tmp"));
}

/** Probes told apart, so that two checks at once cannot collide on one name. */
let probes = 0;

/**
 * Throws "Cannot use Maildir ..." naming the cause unless this process can deliver into `directory` now:
 * a file created in tmp/, and new/ and cur/ writable. Catches what a delivery would meet: a read-only
 * mount, the Maildir deleted or replaced by a file, a permission taken away.
 */
export async function checkMaildirWritable(directory: string): Promise<void> {
  try {
    // Tested by doing what a delivery does in tmp/ (root passes access() anyway).
    probes = (probes + 1) % 0x100000000;
    const probe = join(directory, "tmp", `mailgate-probe.${process.pid}.${probes}`);
    await (await open(probe, "wx", 0o600)).close();
    await unlink(probe);
    await access(join(directory, "new"), constants.W_OK | constants.X_OK);
    await access(join(directory, "cur"), constants.W_OK | constants.X_OK);
  } catch (error) {
    throw new Error(`Cannot use Maildir "${directory}": ${(error as Error).message}.`, { cause: error });
  }
}

/**
 * `mkdir -p`, with each level tried at most twice: node's recursive mkdir never returns where mkdir
 * fails with ENOENT under an existing parent (as everywhere in /proc).
 */
async function makeDirectory(path: string, mode: number, parentMade = false): Promise<void> {
  try {
    await mkdir(path, { mode });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") {
      if (!(await stat(path)).isDirectory()) throw new Error(`${path} exists and is not a directory`);
      return;
    }
    if (code !== "ENOENT" || parentMade || dirname(path) === path) throw error;
    await makeDirectory(dirname(path), mode);
    await makeDirectory(path, mode, true);
  }
}

async function removeStaleTemporaryFiles(tmp: string): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(tmp).catch(() => [] as string[])) {
    const path = join(tmp, name);
    const info = await stat(path).catch(() => null);
    // A fresh file may belong to a delivery of another process on the same Maildir: leave it.
    if (info?.isFile() && now - info.mtimeMs > STALE_TMP_MS) await unlink(path).catch(() => {});
  }
}
