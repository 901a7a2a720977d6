/**
 * The spool's background forwarder: hands spooled messages to the sink, oldest first, a few at a time,
 * each with its original id and envelope. A forwarded message's file is removed (without a flush: if a
 * crash undoes the removal, the message is forwarded again, with the same id).
 *
 * After a failure it pauses with backoff (the first delay, doubled per failure up to the maximum,
 * jittered), then starts again from the oldest message:
 * - SinkUnavailable: the message stays where it is, as many times as it takes.
 * - a refusal (the sink answered, and not with yes): the message is tried again after the pause, and
 *   after `maxRefusals` refusals in a row it moves to refused/new/ (a Maildir), with an error in the log,
 *   so that one message the sink will never take cannot hold the queue forever. A file that cannot be
 *   read as a spooled message goes there at once.
 */
import { rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../server/options.js";
import type { MessageStore } from "../store/store.js";
import { describeError, SinkUnavailable } from "./sink-error.js";
import { compareSpoolOrder, readSpooledMessage, spoolOrder } from "./spool-file.js";
import type { SinkHealth } from "./spool-health.js";

/** One message in the spool's new/. */
export interface SpooledFile {
  name: string;
  size: number;
  /** Refusals in a row (since this process took the spool over). */
  refusals: number;
  /**
   * Times the sink could not take it (SinkUnavailable) although it answered other messages between two
   * of them: a message it cannot take (one too slow to confirm, one its endpoint drops the connection
   * on), not an outage. Counted as refusals are.
   */
  unavailable?: number;
  /** When it last failed with SinkUnavailable (Date.now()), 0 if never. */
  failedAt?: number;
}

export interface ForwarderSettings {
  /** The spool's Maildir: files in new/, refused ones moved to refused/new/. */
  directory: string;
  sink: MessageStore;
  health: SinkHealth;
  logger: Logger;
  /** The spool's name and depth, for log lines. */
  describe: () => string;
  concurrency: number;
  retryDelay: { min: number; max: number };
  maxRefusals: number;
}

/** While the sink stays away, the depth is logged at most this often. */
const DEPTH_LOG_INTERVAL_MS = 30_000;

/** How a forward ended: "retry" keeps the message in the queue, after a pause. */
type Outcome = "forwarded" | "retry" | "refused" | "gone";

export class SpoolForwarder {
  readonly #settings: ForwarderSettings;
  /** Waiting to be forwarded, oldest first (the ones in flight are not here). */
  readonly #queue: { file: SpooledFile; order: [number, number, number] }[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  #messages = 0;
  #bytes = 0;
  #forwarded = 0;
  #refused = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #lastDepthLog = 0;
  #stopped = false;

  constructor(settings: ForwarderSettings) {
    this.#settings = settings;
  }

  /** Messages in the spool (waiting or being forwarded). */
  get messages(): number {
    return this.#messages;
  }

  /** Their files' bytes. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Messages being handed to the sink now. */
  get forwarding(): number {
    return this.#inFlight.size;
  }

  /** Messages forwarded since the spool was opened. */
  get forwarded(): number {
    return this.#forwarded;
  }

  /** Messages moved to refused/ since the spool was opened. */
  get refused(): number {
    return this.#refused;
  }

  /** Messages now durable in new/ (all queued before the first is started: the oldest goes first). */
  add(files: SpooledFile[]): void {
    for (const file of files) {
      this.#messages += 1;
      this.#bytes += file.size;
    }
    if (files.length === 1) this.#enqueue(files[0] as SpooledFile);
    else {
      // Many at once (a spool resumed, in readdir's order): one sort rather than an insertion each.
      for (const file of files) this.#queue.push({ file, order: spoolOrder(file.name) });
      this.#queue.sort((a, b) => compareSpoolOrder(a.order, b.order));
    }
    this.#pump();
  }

  /** Starts no more forwards, and waits for those in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  #enqueue(file: SpooledFile): void {
    const entry = { file, order: spoolOrder(file.name) };
    const queue = this.#queue;
    let at = queue.length;
    while (at > 0 && compareSpoolOrder(entry.order, (queue[at - 1] as (typeof queue)[number]).order) < 0)
      at -= 1;
    queue.splice(at, 0, entry);
  }

  #pump(): void {
    if (this.#stopped || this.#retryTimer) return;
    while (this.#inFlight.size < this.#settings.concurrency) {
      const entry = this.#queue.shift();
      if (!entry) return;
      const forward: Promise<void> = this.#forward(entry.file)
        .then(
          (outcome) => this.#settle(entry.file, outcome),
          (error: unknown) => {
            // Moving or removing the file failed: keep it, try again after a pause.
            this.#settings.logger.error(`${this.#settings.describe()}: ${describeError(error)}`);
            this.#enqueue(entry.file);
            this.#pause();
          },
        )
        .finally(() => {
          this.#inFlight.delete(forward);
          this.#pump();
        });
      this.#inFlight.add(forward);
    }
  }

  async #forward(file: SpooledFile): Promise<Outcome> {
    const { directory, sink, health, logger } = this.#settings;
    const path = join(directory, "new", file.name);
    let spooled: Awaited<ReturnType<typeof readSpooledMessage>>;
    try {
      spooled = await readSpooledMessage(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return "gone";
      await this.#moveToRefused(file, `it cannot be read as a spooled message (${describeError(error)})`);
      return "refused";
    }
    try {
      await sink.deliver(spooled.envelope, spooled.body);
    } catch (error) {
      if (error instanceof SinkUnavailable) {
        // The sink answered other messages since this one's last try: this message is the trouble, not
        // the sink. Such a message must not keep the sink marked down (live mail would then all go to the
        // spool, and fill it), nor stay in the spool for ever.
        const answeredSince = health.lastAnswer > (file.failedAt ?? 0);
        file.failedAt = Date.now();
        if (!answeredSince) {
          health.failed(error.message);
          return "retry";
        }
        file.unavailable = (file.unavailable ?? 0) + 1;
        const why = `the sink could not take message ${spooled.envelope.id} while it took others (${error.message})`;
        if (file.unavailable >= this.#settings.maxRefusals) {
          await this.#moveToRefused(file, `${why}, ${file.unavailable} times`);
          return "refused";
        }
        logger.warn(
          `${this.#settings.describe()}: ${why}; trying it again (${file.unavailable} of ${this.#settings.maxRefusals})`,
        );
        return "retry";
      }
      health.answered();
      file.refusals += 1;
      const why = `the sink refused message ${spooled.envelope.id} (${describeError(error)})`;
      if (file.refusals >= this.#settings.maxRefusals) {
        await this.#moveToRefused(file, `${why}, ${file.refusals} times in a row`);
        return "refused";
      }
      logger.warn(
        `${this.#settings.describe()}: ${why}; trying it again (${file.refusals} of ${this.#settings.maxRefusals})`,
      );
      return "retry";
    }
    health.answered();
    await unlink(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
    });
    return "forwarded";
  }

  #settle(file: SpooledFile, outcome: Outcome): void {
    if (outcome === "retry") {
      this.#enqueue(file);
      this.#pause();
      return;
    }
    this.#messages -= 1;
    this.#bytes -= file.size;
    if (outcome === "gone") {
      this.#settings.logger.warn(
        `${this.#settings.describe()}: ${file.name} was removed before it was forwarded`,
      );
      return;
    }
    this.#failures = 0;
    if (outcome === "forwarded") this.#forwarded += 1;
    if (this.#messages === 0)
      this.#settings.logger.info(`${this.#settings.describe()}: every spooled message was forwarded`);
  }

  async #moveToRefused(file: SpooledFile, why: string): Promise<void> {
    const { directory, logger } = this.#settings;
    const to = join(directory, "refused", "new", file.name);
    await rename(join(directory, "new", file.name), to);
    this.#refused += 1;
    logger.error(`${this.#settings.describe()}: ${why}; moved to ${to}`);
  }

  /** No forward starts before the backoff delay has passed. */
  #pause(): void {
    if (this.#stopped || this.#retryTimer) return;
    const { min, max } = this.#settings.retryDelay;
    const ceiling = Math.min(max, min * 2 ** Math.min(this.#failures, 20));
    // Jitter: between half and all of the ceiling, so that many instances do not retry in step.
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.#failures += 1;
    const now = Date.now();
    if (now - this.#lastDepthLog >= DEPTH_LOG_INTERVAL_MS) {
      this.#lastDepthLog = now;
      this.#settings.logger.warn(
        `${this.#settings.describe()}: waiting for the sink; next try in ${delay} ms`,
      );
    }
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#pump();
    }, delay);
    this.#retryTimer.unref();
  }
}
