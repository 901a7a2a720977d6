/**
 * SinkSpool: a MessageStore that wraps a sink (AmqpSink, HttpSink, ...) and keeps mail flowing while the
 * sink cannot take it. Each message goes to the sink first; when the sink answers SinkUnavailable (not
 * connected, too slow, no confirm in time), or is known to be down, the message is stored in a local
 * Maildir spool, flushed to disk before the 250, and forwarded in the background (spool-forwarder.ts).
 * A refusal by the sink (unroutable, nack, HTTP status) is passed through, never spooled.
 *
 *     const spool = await SinkSpool.open("/var/spool/mailgate", await AmqpSink.open({ url, exchange }));
 *     onMessageStream: (ctx, stream) => spool.deliver({ from, to, id, session: sessionFacts(ctx) }, stream)
 *
 * The directory: tmp/, new/, cur/ (the spool, a Maildir: one file per message in new/, in the format of
 * spool-file.ts), refused/ (a Maildir of the messages the sink kept refusing) and mailgate-spool.lock
 * (the pid of the process that has it open). See docs/sinks-spool.md.
 */
import { randomUUID } from "node:crypto";
import { lstat, readdir, rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { SmtpError } from "../protocol/errors.js";
import { defaultLogger } from "../server/logger.js";
import type { Logger } from "../server/options.js";
import { MaildirStore } from "../store/maildir.js";
import { prepareMaildir } from "../store/maildir-setup.js";
import { StagedMessage } from "../store/staged-message.js";
import type { DeliveryReceipt, MessageStore, StoreEnvelope } from "../store/store.js";
import { WholeMessage } from "../store/whole-message.js";
import { messageTooBig } from "./collect.js";
import { SINK_TEMPORARY_TEXT, SinkUnavailable } from "./sink-error.js";
import { type IdentifiedEnvelope, isSpoolableId, spoolHeader } from "./spool-file.js";
import { type SpooledFile, SpoolForwarder } from "./spool-forwarder.js";
import { SinkHealth, type SinkState } from "./spool-health.js";
import { SpoolLock } from "./spool-lock.js";
import { MessageTee } from "./spool-tee.js";

export interface SinkSpoolOptions {
  /** Bytes the spool may hold (the sizes of its files in new/). Default 1 GiB. */
  maxBytes?: number;
  /** Messages the spool may hold. Default 100,000. */
  maxMessages?: number;
  /**
   * Bytes of a message kept in memory while the sink reads it, so that it can still be spooled if the sink
   * fails; beyond them, the rest is written to an unflushed file in tmp/ as the sink reads. Default 262,144.
   */
  bufferUpTo?: number;
  /** Spooled messages handed to the sink at once. Default 8. */
  forwardConcurrency?: number;
  /**
   * Milliseconds the forwarder pauses after a failure: `min`, doubled per failure in a row up to `max`,
   * jittered. `max` is also how long live deliveries skip a sink found down when there is nothing to
   * forward. Default { min: 250, max: 5000 }.
   */
  retryDelay?: { min: number; max: number };
  /** Refusals in a row after which a spooled message moves to refused/. Default 5. */
  maxRefusals?: number;
  /** Where the spool's events go (never a message's content). Default: the library's default logger. */
  logger?: Logger;
}

/** What the spool holds and does now: for metrics and health checks. */
export interface SpoolStats {
  /** "down" from the sink's SinkUnavailable until it answers again. */
  sink: SinkState;
  /** Messages in the spool (waiting, or being forwarded). */
  messages: number;
  /** Their files' bytes (trace headers included). */
  bytes: number;
  /** Spooled messages being handed to the sink now. */
  forwarding: number;
  /** Whether the last message that needed the spool found it full (451). */
  full: boolean;
  /** Since open(): messages spooled, forwarded from the spool, and moved to refused/. */
  spooled: number;
  forwarded: number;
  refused: number;
}

const DEFAULTS = {
  maxBytes: 1024 ** 3,
  maxMessages: 100_000,
  bufferUpTo: 256 * 1024,
  forwardConcurrency: 8,
  retryDelay: { min: 250, max: 5000 },
  maxRefusals: 5,
};

const LOCK_FILE = "mailgate-spool.lock";

/** Names the spill files of this process's deliveries (open() empties tmp/ of every earlier one). */
let spills = 0;

export class SinkSpool implements MessageStore {
  readonly directory: string;
  readonly sink: MessageStore;
  readonly #maildir: MaildirStore;
  readonly #lock: SpoolLock;
  readonly #forwarder: SpoolForwarder;
  readonly #health: SinkHealth;
  readonly #logger: Logger;
  readonly #maxBytes: number;
  readonly #maxMessages: number;
  readonly #bufferUpTo: number;
  /** Live deliveries not yet settled, for close(). */
  readonly #active = new Set<Promise<unknown>>();
  /** Messages and bytes being written into the spool now: they count against the bounds. */
  #writingMessages = 0;
  #writingBytes = 0;
  #spooled = 0;
  #full = false;
  #closed: Promise<void> | undefined;

  private constructor(
    directory: string,
    sink: MessageStore,
    maildir: MaildirStore,
    lock: SpoolLock,
    options: Required<SinkSpoolOptions>,
  ) {
    this.directory = directory;
    this.sink = sink;
    this.#maildir = maildir;
    this.#lock = lock;
    this.#logger = options.logger;
    this.#maxBytes = options.maxBytes;
    this.#maxMessages = options.maxMessages;
    this.#bufferUpTo = options.bufferUpTo;
    const describe = () => this.#describe();
    this.#health = new SinkHealth(options.retryDelay.max, options.logger, describe);
    this.#forwarder = new SpoolForwarder({
      directory,
      sink,
      health: this.#health,
      logger: options.logger,
      describe,
      concurrency: options.forwardConcurrency,
      retryDelay: options.retryDelay,
      maxRefusals: options.maxRefusals,
    });
  }

  /**
   * Opens (creating it if needed, mode 0700) the spool at `directory` for `sink`, whose deliveries it takes
   * over: removes what a crash left unfinished in tmp/, and starts forwarding what is in new/, oldest
   * first. Throws one sentence if the directory cannot be used or another process has it open.
   */
  static async open(
    directory: string,
    sink: MessageStore,
    options: SinkSpoolOptions = {},
  ): Promise<SinkSpool> {
    const settings = checkOptions(options);
    await prepareMaildir(directory);
    const lock = await SpoolLock.acquire(join(directory, LOCK_FILE), directory);
    let maildir: MaildirStore | undefined;
    try {
      // Under the lock, everything in tmp/ is a leftover: a crash while a message was written.
      const leftovers = await readdir(join(directory, "tmp"));
      for (const name of leftovers) await rm(join(directory, "tmp", name), { force: true, recursive: true });
      maildir = await MaildirStore.open(directory);
      await prepareMaildir(join(directory, "refused"));
      const spool = new SinkSpool(directory, sink, maildir, lock, settings);
      const files = await listSpooled(join(directory, "new"));
      spool.#logger.info(
        `Spool ${directory}: opened with ${files.length} messages to forward` +
          (leftovers.length > 0 ? `; removed ${leftovers.length} unfinished files from tmp/` : ""),
      );
      spool.#forwarder.add(files);
      return spool;
    } catch (error) {
      await maildir?.close().catch(() => {});
      await lock.release();
      throw error;
    }
  }

  /** The sink's limit: a message the sink would refuse as too large is not spooled either. */
  get maxMessageSize(): number | undefined {
    return this.sink.maxMessageSize;
  }

  get stats(): SpoolStats {
    const forwarder = this.#forwarder;
    return {
      sink: this.#health.state,
      messages: forwarder.messages,
      bytes: forwarder.bytes,
      forwarding: forwarder.forwarding,
      full: this.#full,
      spooled: this.#spooled,
      forwarded: forwarder.forwarded,
      refused: forwarder.refused,
    };
  }

  /** The sink's state as the spool sees it, for metrics and readiness (StoreStatus). */
  get state(): SinkState {
    return this.#health.state;
  }

  /** Messages waiting in the spool (StoreStatus): the metrics' spool depth. */
  get depth(): number {
    return this.#forwarder.messages;
  }

  /**
   * Ready while the spool can take a message (StoreStatus), whatever the sink's state: that is what the
   * spool is for. Rejects when the spool is full or its directory cannot be written.
   */
  async checkReady(): Promise<void> {
    if (this.#full) throw new Error("The spool is full (maxMessages or maxBytes reached).");
    await this.#maildir.checkReady();
  }

  /**
   * Hands the message to the sink, or spools it (see the top of this file). The receipt's id is the
   * message's id (envelope.id, or one drawn here when it has none), whichever took it.
   */
  deliver(envelope: StoreEnvelope, message: AsyncIterable<Buffer>): Promise<DeliveryReceipt> {
    if (this.#closed)
      return Promise.reject(new SinkUnavailable(`Spool ${this.directory}`, "the spool is closing"));
    const id = envelope.id ?? randomUUID();
    if (!isSpoolableId(id)) {
      // Read back, it would be refused: never accept what could not be forwarded.
      return Promise.reject(
        new TypeError(`Cannot spool message id ${JSON.stringify(id)}: empty or with control characters.`),
      );
    }
    const delivery = this.#deliver({ ...envelope, id }, message);
    this.#active.add(delivery);
    const forget = () => this.#active.delete(delivery);
    delivery.then(forget, forget);
    return delivery;
  }

  /**
   * Stops taking messages, waits for the deliveries under way (each bounded by the sink's own timeouts)
   * and the forwards in flight, then closes the sink. What is still spooled stays for the next open().
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await Promise.allSettled([...this.#active]);
      await this.#forwarder.stop();
      try {
        await this.sink.close?.();
      } finally {
        await this.#maildir.close();
        await this.#lock.release();
        this.#logger.info(`${this.#describe()}: closed; what it holds is forwarded when it is opened again`);
      }
    })();
    return this.#closed;
  }

  async #deliver(envelope: IdentifiedEnvelope, message: AsyncIterable<Buffer>): Promise<DeliveryReceipt> {
    // A sink found down is skipped, unless the spool is full: then the sink may still take the message
    // (messages it cannot take could otherwise fill the spool and have every later one refused).
    if (this.#health.skipSink && !this.#isFull()) return this.#spool(envelope, message);
    const spillPath = () => join(this.directory, "tmp", `spill.${process.pid}.${++spills}`);
    // A message whole in memory or staged in a file can be read again as it is: it needs no tee to be
    // spooled after a failure.
    const replayable = message instanceof WholeMessage || message instanceof StagedMessage;
    const tee = replayable ? null : new MessageTee(message, this.#bufferUpTo, spillPath);
    try {
      const receipt = await this.sink.deliver(envelope, tee ?? message);
      this.#health.answered();
      return receipt;
    } catch (error) {
      // The message itself failed (the session aborted it): nothing to keep.
      if (tee?.sourceError !== undefined) throw tee.sourceError;
      if (!(error instanceof SinkUnavailable)) {
        if (error instanceof SmtpError) this.#health.answered();
        throw error;
      }
      this.#health.failed(error.message);
      return await this.#spool(envelope, tee ? tee.replay() : message);
    } finally {
      await tee?.dispose();
    }
  }

  /** Stores the message in the spool (flushed) and queues it for the forwarder; 451 when the spool is full. */
  async #spool(envelope: IdentifiedEnvelope, message: AsyncIterable<Buffer>): Promise<DeliveryReceipt> {
    if (this.#forwarder.messages + this.#writingMessages >= this.#maxMessages) throw this.#spoolFull();
    this.#writingMessages += 1;
    const counter = { bytes: 0 };
    try {
      const receipt = await this.#maildir.deliver(
        envelope,
        this.#bounded(spoolHeader(envelope), message, counter),
      );
      const file: SpooledFile = { name: basename(receipt.location), size: receipt.size, refusals: 0 };
      this.#spooled += 1;
      this.#forwarder.add([file]);
      this.#logger.debug(`${this.#describe()}: spooled message ${envelope.id} as ${file.name}`);
      if (this.#full) {
        this.#full = false;
        this.#logger.info(`${this.#describe()}: has room again`);
      }
      return { id: envelope.id, location: receipt.location, size: counter.bytes };
    } finally {
      this.#writingMessages -= 1;
      this.#writingBytes -= counter.bytes;
    }
  }

  /** `header`, then the message, counted against the spool's bytes and the sink's maximum message size. */
  async *#bounded(header: Buffer, message: AsyncIterable<Buffer>, counter: { bytes: number }) {
    yield header;
    const limit = this.sink.maxMessageSize;
    for await (const chunk of message) {
      counter.bytes += chunk.length;
      this.#writingBytes += chunk.length;
      if (limit !== undefined && counter.bytes > limit)
        throw messageTooBig(limit, "the sink's maximum message size");
      if (this.#forwarder.bytes + this.#writingBytes > this.#maxBytes) throw this.#spoolFull();
      yield chunk;
    }
  }

  /** The 451 of a full spool, logged once each time the spool fills up. */
  /** No room for one more message now (or the last one found none). */
  #isFull(): boolean {
    return (
      this.#full ||
      this.#forwarder.messages + this.#writingMessages >= this.#maxMessages ||
      this.#forwarder.bytes + this.#writingBytes >= this.#maxBytes
    );
  }

  #spoolFull(): SmtpError {
    const bounds = `maxMessages ${this.#maxMessages}, maxBytes ${this.#maxBytes}`;
    const what = `${this.#describe()}: full (${bounds}) while the sink is unavailable`;
    if (!this.#full) {
      this.#full = true;
      this.#logger.warn(`${what}; answering 451 4.3.0 until it has room`);
    }
    return new SmtpError(451, SINK_TEMPORARY_TEXT, "4.3.0", `451 4.3.0 ${what}`);
  }

  #describe(): string {
    return `Spool ${this.directory} (${this.#forwarder.messages} messages, ${this.#forwarder.bytes} bytes)`;
  }
}

/**
 * The spooled files in `newDirectory`, with their sizes. Only regular files: a symlink planted there is
 * never followed (it could make the forwarder send a file from outside the spool), nor is a FIFO opened.
 */
async function listSpooled(newDirectory: string): Promise<SpooledFile[]> {
  const files: SpooledFile[] = [];
  for (const name of await readdir(newDirectory)) {
    if (name.startsWith(".")) continue;
    const info = await lstat(join(newDirectory, name)).catch(() => undefined);
    if (info?.isFile()) files.push({ name, size: info.size, refusals: 0 });
  }
  return files;
}

function checkOptions(options: SinkSpoolOptions): Required<SinkSpoolOptions> {
  const positive = (name: string, value: number | undefined, fallback: number, min = 1): number => {
    const chosen = value ?? fallback;
    if (!Number.isInteger(chosen) || chosen < min) {
      throw new TypeError(`Invalid SinkSpool option ${name}: ${value} is not an integer >= ${min}.`);
    }
    return chosen;
  };
  const delay = options.retryDelay ?? DEFAULTS.retryDelay;
  const retryDelay = {
    min: positive("retryDelay.min", delay.min, DEFAULTS.retryDelay.min),
    max: positive("retryDelay.max", delay.max, DEFAULTS.retryDelay.max),
  };
  if (retryDelay.max < retryDelay.min) {
    throw new TypeError("Invalid SinkSpool option retryDelay: max is lower than min.");
  }
  return {
    maxBytes: positive("maxBytes", options.maxBytes, DEFAULTS.maxBytes),
    maxMessages: positive("maxMessages", options.maxMessages, DEFAULTS.maxMessages),
    bufferUpTo: positive("bufferUpTo", options.bufferUpTo, DEFAULTS.bufferUpTo, 0),
    forwardConcurrency: positive(
      "forwardConcurrency",
      options.forwardConcurrency,
      DEFAULTS.forwardConcurrency,
    ),
    retryDelay,
    maxRefusals: positive("maxRefusals", options.maxRefusals, DEFAULTS.maxRefusals),
    logger: options.logger ?? defaultLogger,
  };
}
