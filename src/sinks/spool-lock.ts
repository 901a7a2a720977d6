/**
 * One process per spool directory: two forwarders would send every message twice, and the second
 * process's start would remove the first one's unfinished files from tmp/. The lock is a file, created
 * exclusively, holding the owner's pid and, where /proc exists, the owner's start time (in clock ticks
 * since boot): a pid alone is not enough, since after a crash the same pid often comes back (PID 1 in a
 * container) or belongs to some other process (after a reboot). A lock whose owner is gone is taken over,
 * by one process at a time.
 */
import { open, readFile, stat, unlink } from "node:fs/promises";
import { resolve } from "node:path";
import { setTimeout as delay } from "node:timers/promises";

/** The lock files this process holds: a lock naming our pid but not in here is a dead predecessor's. */
const held = new Set<string>();

/**
 * A takeover marker or an empty lock older than this was left by a process that died mid-way: it is removed
 * (a restart sooner than that after such a crash is refused once, with a sentence saying why).
 */
const STALE_TAKEOVER_MS = 10_000;
const TAKEOVER_ATTEMPTS = 40;
const TAKEOVER_WAIT_MS = 50;

export class SpoolLock {
  private constructor(readonly path: string) {}

  /** Takes the lock at `path`; throws one sentence naming the process that holds it. */
  static async acquire(lockPath: string, spool: string): Promise<SpoolLock> {
    const path = resolve(lockPath);
    if (held.has(path)) {
      throw new Error(`Cannot open the spool "${spool}": this process has it open already.`);
    }
    const me = `${process.pid} ${await startTime(process.pid)}`.trim();
    const waitEmptyUntil = Date.now() + STALE_TAKEOVER_MS + 1000;
    for (let attempt = 0; ; attempt++) {
      if (await createLock(path, me)) break;
      const owner = parseLock(await readFile(path, "utf8").catch(() => ""));
      if (!owner && (await isYoung(path)) && Date.now() < waitEmptyUntil) {
        // Another process has just created it and not yet written its pid (or died doing so: once the
        // lock is old enough, it is taken over): look again shortly.
        await delay(TAKEOVER_WAIT_MS);
        continue;
      }
      if (owner && (await isRunning(owner))) {
        throw new Error(
          `Cannot open the spool "${spool}": process ${owner.pid} uses it (${path}); give each instance its own spool.`,
        );
      }
      if (attempt >= TAKEOVER_ATTEMPTS) {
        throw new Error(`Cannot open the spool "${spool}": its lock ${path} could not be taken over.`);
      }
      // Its owner is gone: take it over, one process at a time (two that both found it stale would
      // otherwise each remove the lock the other had just made).
      await takeOver(path);
    }
    held.add(path);
    return new SpoolLock(path);
  }

  async release(): Promise<void> {
    held.delete(this.path);
    await unlink(this.path).catch(() => {});
  }
}

/** Creates the lock file holding `content`; false if one exists. */
async function createLock(path: string, content: string): Promise<boolean> {
  let file: Awaited<ReturnType<typeof open>>;
  try {
    file = await open(path, "wx", 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
  try {
    await file.writeFile(`${content}\n`);
  } finally {
    await file.close();
  }
  return true;
}

/**
 * Removes a stale lock under an exclusive marker, after checking again that it is still stale (another
 * process may have taken it over meanwhile); waits a little when another takeover is under way.
 */
async function takeOver(path: string): Promise<void> {
  const marker = `${path}.takeover`;
  if (!(await createLock(marker, String(process.pid)))) {
    const since = await stat(marker).then(
      (info) => Date.now() - info.mtimeMs,
      () => 0,
    );
    if (since > STALE_TAKEOVER_MS) await unlink(marker).catch(() => {});
    else await delay(TAKEOVER_WAIT_MS);
    return;
  }
  try {
    const owner = parseLock(await readFile(path, "utf8").catch(() => ""));
    const stale = owner ? !(await isRunning(owner)) : !(await isYoung(path));
    if (stale) await unlink(path).catch(() => {});
  } finally {
    await unlink(marker).catch(() => {});
  }
}

/** Whether the file at `path` was written in the last few seconds (a lock still being made). */
async function isYoung(path: string): Promise<boolean> {
  return stat(path).then(
    (info) => Date.now() - info.mtimeMs < STALE_TAKEOVER_MS,
    () => false,
  );
}

interface LockOwner {
  pid: number;
  /** Its start time in clock ticks since boot, when the lock says (written where /proc exists). */
  started: string | undefined;
}

function parseLock(text: string): LockOwner | undefined {
  const [pidText, started] = text.trim().split(/\s+/);
  const pid = Number(pidText);
  return Number.isInteger(pid) && pid > 0 ? { pid, started } : undefined;
}

/** Whether the lock's owner still runs: the same pid and, where both are known, the same start time. */
async function isRunning(owner: LockOwner): Promise<boolean> {
  if (owner.pid === process.pid) return false; // not in `held`: a dead predecessor that had our pid
  if (!isAlive(owner.pid)) return false;
  if (owner.started === undefined) return true;
  const now = await startTime(owner.pid);
  return now === "" || now === owner.started;
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

/** Field 22 of /proc/PID/stat (the process's start time); "" where it cannot be read. */
async function startTime(pid: number): Promise<string> {
  const text = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its end.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return fields[19] ?? "";
}
