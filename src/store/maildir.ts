/**
 * A MessageStore that delivers into a Maildir (https://cr.yp.to/proto/maildir.html), one file per message
 * in `new/`, readable by Dovecot, Courier, mutt and any other Maildir reader.
 *
 * File format: the store prepends trace headers recording the SMTP envelope, then writes the message
 * bytes exactly as received (CRLF line ends included):
 *
 *     Return-Path: <sender@example.org>
 *     X-Envelope-To: <first-recipient@example.com>
 *     X-Envelope-To: <second-recipient@example.com>
 *     ...the message as received...
 *
 * Every trace line ends with CRLF. `Return-Path: <>` is the null sender. There is one `X-Envelope-To`
 * line per accepted recipient, in RCPT order. Addresses are written as UTF-8 (SMTPUTF8) without any
 * escaping; they never contain CR, LF or NUL. To recover the envelope, read the `Return-Path` line, then
 * the `X-Envelope-To` lines up to the first line that is not one; the message as received starts there
 * (see `parseEnvelopeHeaders`).
 *
 * File names follow Dovecot: `<seconds>.M<microseconds>P<pid>Q<counter>R<random hex>.<hostname>,S=<size>`,
 * where the hostname has "/" written as "\057" and ":" as "\072", S= is the file size in bytes, and the
 * random part is drawn once per process.
 */
import { randomBytes } from "node:crypto";
import { type FileHandle, open, rename, rm, stat } from "node:fs/promises";
import { hostname as osHostname } from "node:os";
import { join } from "node:path";
import { BatchWriter } from "./batch-writer.js";
import { fsyncDirectory, GroupCommit } from "./group-commit.js";
import { FollowedDirectory, type Held, maildirReplaced } from "./held-directory.js";
import { checkMaildirWritable, prepareMaildir } from "./maildir-setup.js";
import type { DeliveryReceipt, MessageStore, StoreEnvelope } from "./store.js";
import { loadSyncfs } from "./syncfs.js";
import { writeFully } from "./write-fully.js";

/**
 * How a message's bytes are made durable before its rename into new/: "fsync" flushes each file on its
 * own; "syncfs" flushes the Maildir's file system once for all the deliveries that finished writing
 * meanwhile (group commit; Linux >= 5.8 with the optional dependency koffi); "auto" is syncfs where it
 * is available, else fsync.
 */
export type MaildirFlush = "auto" | "fsync" | "syncfs";

export const MAILDIR_FLUSHES: readonly MaildirFlush[] = ["auto", "fsync", "syncfs"];

export interface MaildirStoreOptions {
  /** The host name in file names; defaults to os.hostname(). */
  hostname?: string;
  /** Flushes a directory to disk; injectable so tests can count the shared fsyncs. */
  fsyncDirectory?: (directory: string) => Promise<void>;
  /** `MaildirStore.open` only: see MaildirFlush (default "auto"). */
  flush?: MaildirFlush;
  /**
   * Flushes the whole file system the Maildir is on (what "syncfs" uses; injectable for tests). When
   * given, files are not fsynced one by one: every delivery waits for one of these that started after
   * it wrote its file.
   */
  syncFileSystem?: () => Promise<void>;
}

/** Writes are batched to at least this size, so a small message costs one write syscall. */
const WRITE_BATCH = 64 * 1024;

/**
 * Messages up to this size (trace headers included) are stored whole by the writer thread; larger ones
 * are streamed to disk from this thread, in constant memory. Most mail is well under it.
 */
const WHOLE_MESSAGE_MAX = 256 * 1024;

const RETURN_PATH = "Return-Path: <";
const ENVELOPE_TO = "X-Envelope-To: <";

/** Per-process delivery counter for the Q field: with the pid, it keeps names unique within one second. */
let deliveries = 0;

/**
 * The R field, drawn once per process: it tells apart two processes that got the same pid (a restart
 * within the same second). Within a process, Q already makes each name unique.
 */
const PROCESS_RANDOM = randomBytes(8).toString("hex");

export class MaildirStore implements MessageStore {
  readonly directory: string;
  readonly #hostname: string;
  /** Makes renames into new/ durable, shared by concurrent deliveries. */
  readonly #newSync: GroupCommit;
  /** With syncfs: makes the files' bytes durable, shared by concurrent deliveries. */
  readonly #dataSync: GroupCommit | undefined;
  /** With syncfs: the Maildir directory it flushes through, held open until close(). */
  #root: FollowedDirectory | undefined;
  /** With syncfs, set by open(): stores messages of up to WHOLE_MESSAGE_MAX bytes on a worker thread. */
  #writer: BatchWriter | undefined;

  /** Uses `directory` as it is; `MaildirStore.open` also creates it. */
  constructor(directory: string, options: MaildirStoreOptions = {}) {
    this.directory = directory;
    this.#hostname = (options.hostname ?? osHostname()).replaceAll("/", "\\057").replaceAll(":", "\\072");
    const newDirectory = join(directory, "new");
    const syncDirectory = options.fsyncDirectory ?? fsyncDirectory;
    this.#newSync = new GroupCommit(() => syncDirectory(newDirectory));
    this.#dataSync = options.syncFileSystem ? new GroupCommit(options.syncFileSystem) : undefined;
  }

  /** How this store makes a message's bytes durable: one fsync per file, or a shared syncfs. */
  get flush(): "fsync" | "syncfs" {
    return this.#dataSync ? "syncfs" : "fsync";
  }

  /**
   * Creates `directory/{tmp,new,cur}` if needed (mode 0700: mail is private), checks that it can deliver
   * there, chooses how to flush (options.flush) and returns the store.
   */
  static async open(directory: string, options: MaildirStoreOptions = {}): Promise<MaildirStore> {
    const flush = options.flush ?? "auto";
    if (!MAILDIR_FLUSHES.includes(flush)) {
      throw new TypeError(`Invalid Maildir flush "${flush}"; use one of: ${MAILDIR_FLUSHES.join(", ")}.`);
    }
    await prepareMaildir(directory);
    // One fsync per file runs on this thread: libuv's thread pool runs several at once, where one writer
    // thread would queue them behind each other. Flushes injected by a test run here too, where it can
    // count and pace them.
    const onThisThread = () => new MaildirStore(directory, options);
    if (options.syncFileSystem || options.fsyncDirectory || flush === "fsync") return onThisThread();
    const syncfs = await loadSyncfs();
    if (typeof syncfs === "string") {
      if (flush === "syncfs") throw new Error(`Cannot flush the Maildir with syncfs: ${syncfs}.`);
      return onThisThread();
    }
    const root = await FollowedDirectory.open(directory);
    // Through the directory held when the syncfs starts: deliveries check that it is the one they wrote under.
    const store = new MaildirStore(directory, { ...options, syncFileSystem: () => syncfs(root.fd) });
    store.#root = root;
    store.#writer = new BatchWriter({ directory });
    return store;
  }

  /** Resolves when a message can be delivered now; rejects naming the cause (see StoreStatus). */
  checkReady(): Promise<void> {
    return checkMaildirWritable(this.directory);
  }

  /**
   * Releases what open() holds (the writer thread, the directory syncfs flushes through). Deliveries must
   * be over.
   */
  async close(): Promise<void> {
    const [writer, root] = [this.#writer, this.#root];
    this.#writer = undefined;
    this.#root = undefined;
    await writer?.close();
    await root?.close();
  }

  async deliver(envelope: StoreEnvelope, message: AsyncIterable<Buffer>): Promise<DeliveryReceipt> {
    const headers = traceHeaders(envelope);
    const id = this.#uniqueName();
    const tmpPath = join(this.directory, "tmp", id);
    let body = message;
    if (this.#writer) {
      const start = await readUpTo(message, WHOLE_MESSAGE_MAX - headers.length);
      if (!start.rest) return this.#storeWhole(this.#writer, id, tmpPath, [headers, ...start.chunks]);
      body = start.rest;
    }
    // Before the file exists: syncfs reports the write errors of files created after its descriptor.
    const held = await this.#root?.follow();
    // "wx" (O_EXCL): never write into a file another delivery or process owns.
    let file: FileHandle | undefined = await open(tmpPath, "wx", 0o600);
    let size: number;
    let location: string;
    try {
      size = await writeMessage(file, headers, body);
      if (!this.#dataSync) await file.sync();
      const written = file;
      file = undefined;
      await written.close();
      // The file is written: a syncfs that starts from now on makes it durable with everyone else's.
      await this.#dataSync?.sync();
      location = join(this.directory, "new", `${id},S=${size}`);
      // Only a complete, flushed file is ever visible in new/.
      await rename(tmpPath, location);
    } catch (error) {
      await file?.close().catch(() => {});
      await rm(tmpPath, { force: true }).catch(() => {});
      throw error;
    }
    try {
      await this.#newSync.sync();
      await this.#checkFlushed(location, held);
    } catch (error) {
      // The caller will report failure and the client will send again: do not also deliver this copy.
      await rm(location, { force: true }).catch(() => {});
      throw error;
    }
    return { id, location, size };
  }

  /**
   * Throws unless the file at `location` is where a Maildir reader finds it now, on the file system the
   * syncfs (if any) flushed: a Maildir replaced since the rename (deleted and made again, or mounted over)
   * has the file elsewhere, and the fsync of new/, which opens it by path, reached another directory.
   */
  async #checkFlushed(location: string, held: Held | undefined): Promise<void> {
    const stored = await stat(location, { bigint: true }).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined;
      throw error;
    });
    const flushed = !held || (this.#root?.holds(held) && stored?.dev === held.identity.dev);
    if (!stored || !flushed) throw maildirReplaced(this.directory);
  }

  /** A message read whole: the writer thread stores it (and its flushes are shared with its batch). */
  async #storeWhole(
    writer: BatchWriter,
    id: string,
    tmpPath: string,
    parts: Buffer[],
  ): Promise<DeliveryReceipt> {
    let size = 0;
    for (const part of parts) size += part.length;
    // A buffer of its own (not a slice of Node's shared pool), so that it can move to the thread uncopied.
    const data = Buffer.allocUnsafeSlow(size);
    let offset = 0;
    for (const part of parts) offset += part.copy(data, offset);
    const location = join(this.directory, "new", `${id},S=${size}`);
    await writer.store(tmpPath, location, data);
    return { id, location, size };
  }

  #uniqueName(): string {
    // Date.now() has millisecond resolution; P, Q and R make the name unique, M only orders it.
    const now = Date.now();
    const seconds = Math.floor(now / 1000);
    const microseconds = (now % 1000) * 1000;
    deliveries += 1;
    return `${seconds}.M${microseconds}P${process.pid}Q${deliveries}R${PROCESS_RANDOM}.${this.#hostname}`;
  }
}

/** The trace headers for `envelope`, validated so that they always parse back to the same envelope. */
function traceHeaders(envelope: StoreEnvelope): Buffer {
  if (envelope.to.length === 0) throw new TypeError("Cannot store a message without recipients.");
  for (const address of [envelope.from, ...envelope.to]) {
    // A CR or LF would let an address forge header lines; NUL breaks most mail readers.
    if (/[\r\n\0]/.test(address)) {
      throw new TypeError(`Cannot store address ${JSON.stringify(address)}: it contains CR, LF or NUL.`);
    }
  }
  const lines = [
    `${RETURN_PATH}${envelope.from}>\r\n`,
    ...envelope.to.map((to) => `${ENVELOPE_TO}${to}>\r\n`),
  ];
  return Buffer.from(lines.join(""), "utf8");
}

/** Streams `headers` then `message` into `file`, batching small chunks; returns the bytes written. */
async function writeMessage(
  file: FileHandle,
  headers: Buffer,
  message: AsyncIterable<Buffer>,
): Promise<number> {
  let pending: Buffer[] = [headers];
  let pendingBytes = headers.length;
  let size = 0;
  const flush = async () => {
    const batch = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    await writeFully(file, batch);
    size += batch.length;
  };
  // Each write is awaited before the next chunk is pulled: that is the backpressure on the SMTP session,
  // and it bounds memory to one batch whatever the message size.
  for await (const chunk of message) {
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= WRITE_BATCH) await flush();
  }
  if (pendingBytes > 0) await flush();
  return size;
}

/**
 * Reads `message` until it ends or passes `limit` bytes. When it passed, `rest` yields the whole message
 * again: the chunks read so far, then the ones still to come.
 */
async function readUpTo(
  message: AsyncIterable<Buffer>,
  limit: number,
): Promise<{ chunks: Buffer[]; rest?: AsyncIterable<Buffer> }> {
  const iterator = message[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let bytes = 0;
  for (;;) {
    const next = await iterator.next();
    if (next.done) return { chunks };
    chunks.push(next.value);
    bytes += next.value.length;
    if (bytes > limit) return { chunks, rest: resume(chunks, iterator) };
  }
}

async function* resume(read: Buffer[], iterator: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  try {
    yield* read;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  } finally {
    // A consumer that stops early (a failed write) releases the message stream, as for-await would.
    await iterator.return?.();
  }
}

/**
 * Reads back the trace headers that MaildirStore prepends (see the format at the top of this file).
 * The bytes of `file` from `bodyOffset` on are the message as received.
 */
export function parseEnvelopeHeaders(file: Buffer): { envelope: StoreEnvelope; bodyOffset: number } {
  let offset = 0;
  /** The address on the trace line at `offset` starting with `prefix`, or undefined if it is not one. */
  const traceLine = (prefix: string): string | undefined => {
    const end = file.indexOf("\r\n", offset);
    if (end < 0 || file.toString("utf8", offset, offset + prefix.length) !== prefix) return undefined;
    // The address may itself contain ">" (quoted local parts); only the last one closes it.
    if (file[end - 1] !== 0x3e) return undefined;
    const address = file.toString("utf8", offset + prefix.length, end - 1);
    offset = end + 2;
    return address;
  };
  const from = traceLine(RETURN_PATH);
  if (from === undefined) throw new Error("Not a MaildirStore message: it does not start with Return-Path.");
  const to: string[] = [];
  for (let address = traceLine(ENVELOPE_TO); address !== undefined; address = traceLine(ENVELOPE_TO)) {
    to.push(address);
  }
  return { envelope: { from, to }, bodyOffset: offset };
}
