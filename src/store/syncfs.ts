/**
 * syncfs(2) (Linux): one call writes back everything written to a file system and flushes the device's
 * cache, so concurrent deliveries share one flush instead of paying an fsync each. Node has no binding
 * for it; it is called through koffi, an optional dependency (a C FFI that ships prebuilt binaries, so
 * nothing is compiled at install).
 *
 * Only from Linux 5.8 on does syncfs report a writeback error (one that happened anywhere on the file
 * system since the descriptor was opened or last reported one); before, it could report success after a
 * failed write, so older kernels fall back to an fsync per file.
 */
import { release } from "node:os";

/** Flushes the file system that the open descriptor `fd` is on; rejects if anything failed. */
export type FileSystemSync = (fd: number) => Promise<void>;

/** The same, blocking the calling thread (for a worker thread that does nothing else meanwhile). */
export type BlockingFileSystemSync = (fd: number) => void;

/** syncfs as koffi binds it: a call returns its result, `.async` runs it on koffi's worker thread. */
interface BoundSyncfs {
  (fd: number): number;
  async(fd: number, callback: (error: unknown, result: number) => void): void;
}
interface Koffi {
  load(library: string): { func(declaration: string): BoundSyncfs };
}

const WRITE_ERROR = "syncfs failed: the file system reported a write error";

/** The kernel's version as [major, minor], from os.release() ("6.1.0-18-amd64"). */
function kernelVersion(): [number, number] {
  const [major = 0, minor = 0] = release()
    .split(".")
    .map((part) => Number.parseInt(part, 10));
  return [major, minor];
}

/** The bound syncfs, or why it cannot be used here (a sentence fragment). */
async function bindSyncfs(): Promise<BoundSyncfs | string> {
  if (process.platform !== "linux") return `syncfs is Linux only (this is ${process.platform})`;
  const [major, minor] = kernelVersion();
  if (major < 5 || (major === 5 && minor < 8)) {
    return `Linux ${major}.${minor} does not report write errors through syncfs (5.8 and later do)`;
  }
  try {
    // A specifier in a variable: koffi is optional, and the build must not need its types.
    const specifier = "koffi";
    const { default: koffi } = (await import(specifier)) as { default: Koffi };
    return koffi.load("libc.so.6").func("int syncfs(int fd)");
  } catch (error) {
    return `the optional dependency koffi cannot call it (${error instanceof Error ? error.message : String(error)})`;
  }
}

/** syncfs off the event loop, or why it cannot be used here. */
export async function loadSyncfs(): Promise<FileSystemSync | string> {
  const syncfs = await bindSyncfs();
  if (typeof syncfs === "string") return syncfs;
  return (fd) =>
    new Promise((resolve, reject) => {
      syncfs.async(fd, (error, result) => {
        if (error) reject(error);
        else if (result !== 0) reject(new Error(WRITE_ERROR));
        else resolve();
      });
    });
}

/** syncfs as a blocking call, or why it cannot be used here. */
export async function loadBlockingSyncfs(): Promise<BlockingFileSystemSync | string> {
  const syncfs = await bindSyncfs();
  if (typeof syncfs === "string") return syncfs;
  return (fd) => {
    if (syncfs(fd) !== 0) throw new Error(WRITE_ERROR);
  };
}
