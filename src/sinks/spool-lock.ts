/**
 * One process per spool directory: two forwarders would send every message twice, and the second
 * process's start would remove the first one's unfinished files from tmp/. The lock is a file holding the
 * owner's pid, created exclusively; a lock whose process is gone (a crash, kill -9) is taken over.
 */
import { open, readFile, unlink } from "node:fs/promises";

export class SpoolLock {
  private constructor(readonly path: string) {}

  /** Takes the lock at `path`; throws one sentence naming the process that holds it. */
  static async acquire(path: string, spool: string): Promise<SpoolLock> {
    for (let attempt = 0; ; attempt++) {
      try {
        const file = await open(path, "wx", 0o600);
        try {
          await file.writeFile(`${process.pid}\n`);
        } finally {
          await file.close();
        }
        return new SpoolLock(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw error;
      }
      const owner = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10);
      if (owner === process.pid) {
        throw new Error(`Cannot open the spool "${spool}": this process has it open already.`);
      }
      if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) {
        throw new Error(
          `Cannot open the spool "${spool}": process ${owner} uses it (${path}); give each instance its own spool.`,
        );
      }
      // Its owner is gone: take it over.
      await unlink(path).catch(() => {});
    }
  }

  async release(): Promise<void> {
    await unlink(this.path).catch(() => {});
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
