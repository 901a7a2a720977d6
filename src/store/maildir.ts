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
import { fsyncDirectory, GroupCommit } from "./group-commit.js";
import { checkMaildirWritable, prepareMaildir } from "./maildir-setup.js";
import type { DeliveryReceipt, MessageStore, StoreEnvelope } from "./store.js";
import { writeFully } from "./write-fully.js";

export interface MaildirStoreOptions {
  /** The host name in file names; defaults to os.hostname(). */
  hostname?: string;
  /** Flushes a directory to disk; injectable so tests can count the shared fsyncs. */
  fsyncDirectory?: (directory: string) => Promise<void>;
}

/** Writes are batched to at least this size, so a small message costs one write syscall. */
const WRITE_BATCH = 64 * 1024;

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

  /** Uses `directory` as it is; `MaildirStore.open` also creates it. */
  constructor(directory: string, options: MaildirStoreOptions = {}) {
    this.directory = directory;
    this.#hostname = (options.hostname ?? osHostname()).replaceAll("/", "\\057").replaceAll(":", "\\072");
    const newDirectory = join(directory, "new");
    const syncDirectory = options.fsyncDirectory ?? fsyncDirectory;
    this.#newSync = new GroupCommit(() => syncDirectory(newDirectory));
  }

  /**
   * Creates `directory/{tmp,new,cur}` if needed (mode 0700: mail is private), checks that it can deliver
   * there and returns the store.
   */
  static async open(directory: string, options: MaildirStoreOptions = {}): Promise<MaildirStore> {
    await prepareMaildir(directory);
    return new MaildirStore(directory, options);
  }

  /** Resolves when a message can be delivered now; rejects naming the cause (see StoreStatus). */
  checkReady(): Promise<void> {
    return checkMaildirWritable(this.directory);
  }

  /** Holds nothing to release (the MessageStore interface's close); deliveries must be over. */
  async close(): Promise<void> {}

  async deliver(envelope: StoreEnvelope, message: AsyncIterable<Buffer>): Promise<DeliveryReceipt> {
    const headers = traceHeaders(envelope);
    const id = this.#uniqueName();
    const tmpPath = join(this.directory, "tmp", id);
    // "wx" (O_EXCL): never write into a file another delivery or process owns.
    let file: FileHandle | undefined = await open(tmpPath, "wx", 0o600);
    let size: number;
    let location: string;
    try {
      size = await writeMessage(file, headers, message);
      await file.sync();
      const written = file;
      file = undefined;
      await written.close();
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
      await this.#checkFlushed(location);
    } catch (error) {
      // The caller will report failure and the client will send again: do not also deliver this copy.
      await rm(location, { force: true }).catch(() => {});
      throw error;
    }
    return { id, location, size };
  }

  /**
   * Throws unless the file at `location` is where a Maildir reader finds it now: a Maildir replaced since
   * the rename (deleted and made again, or mounted over) has the file elsewhere, and the fsync of new/,
   * which opens it by path, reached another directory.
   */
  async #checkFlushed(location: string): Promise<void> {
    const stored = await stat(location).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined;
      throw error;
    });
    if (!stored) throw maildirReplaced(this.directory);
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

/** Why a delivery failed whose Maildir was replaced while it was stored. */
function maildirReplaced(directory: string): Error {
  return new Error(
    `The Maildir "${directory}" was replaced (deleted and made again, or mounted over) while the message ` +
      "was stored, so its flushes may have missed it: it was not acknowledged.",
  );
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
