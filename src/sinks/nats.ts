/**
 * NatsSink: a MessageStore that publishes each message to a NATS JetStream stream and resolves only on the
 * stream's PubAck, so that the 250 means "a stream holds it".
 *
 * - One connection (nats.js reconnects it by itself; the sink follows its status events). Many publishes
 *   in flight at once, each awaiting its own PubAck, at most `window` of them.
 * - `Nats-Msg-Id` is the envelope's id: a publish repeated within the stream's duplicate window is
 *   dropped by JetStream (its PubAck says duplicate, and the delivery succeeds).
 * - A message larger than one NATS message can carry (the server's max_payload less the headers) is
 *   streamed, chunk by chunk, into a JetStream Object Store bucket, and the stream message carries the
 *   reference (claim check) with an empty body. The consumer deletes the object once it has the message.
 * - Two kinds of failure, both 451 4.3.0 (see sink-error.ts): SinkUnavailable when the server cannot take
 *   the message now (not connected, no PubAck within publishTimeout, the connection lost, closing); a
 *   refusal when the stream answered no (stream full, no stream for the subject, the bucket full).
 * - After a publish timed out, the sink takes nothing new until a PING to the server is answered: a
 *   stalled connection must not pile more messages into the client's outbound buffer than the window.
 *
 * The wire format is in nats-headers.ts and docs/sinks-nats.md.
 */
import { randomUUID } from "node:crypto";
import type { JetStreamClient, PubAck } from "@nats-io/jetstream";
import type { ObjectStore } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../server/options.js";
import type { DeliveryReceipt, MessageStore, StoreEnvelope } from "../store/store.js";
import { messageTooBig, readUpTo } from "./collect.js";
import { isHeaderSafeId } from "./header-safe-id.js";
import { natsMailHeaders } from "./nats-headers.js";
import { putObject } from "./nats-object-upload.js";
import { type NatsSettings, type NatsSinkOptions, natsSettings } from "./nats-options.js";
import { connectionOptions, declareStream, loadClient, loaded, openBucket } from "./nats-setup.js";
import { ReconnectBackoff } from "./reconnect-backoff.js";
import { describeError, SinkUnavailable, sinkRefusal } from "./sink-error.js";
import type { SinkStartOptions } from "./sink-options.js";
import { InFlightWindow } from "./window.js";

export type { NatsDeclareOptions, NatsSinkOptions, NatsTlsOptions } from "./nats-options.js";

/** "stalled": connected, but a publish timed out and the server has not answered a PING since. */
export type NatsSinkState = "idle" | "connecting" | "connected" | "stalled" | "disconnected" | "closed";

/** One publish whose PubAck the sink awaits: settled by the server's answer, a timeout or a lost link. */
interface Pending {
  answer(error: Error | null): void;
}

export class NatsSink implements MessageStore {
  readonly maxMessageSize: number;
  readonly subject: string;
  readonly bucket: string | null;
  readonly #settings: NatsSettings;
  readonly #redactedServers: string;
  readonly #publishTimeout: number;
  readonly #window: InFlightWindow;
  readonly #backoff: ReconnectBackoff;
  readonly #logger: Logger;
  readonly #closing = new AbortController();

  #state: Exclude<NatsSinkState, "stalled"> = "idle";
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #objects: ObjectStore | undefined;
  /** The next try of start()'s first connection (start({ retryInBackground })). */
  #startRetry: NodeJS.Timeout | undefined;
  /** A publish timed out: nothing new is published until the server answers a PING. */
  #unanswered = false;
  #peakInFlight = 0;
  #heldBytes = 0;
  /** Publishes awaiting their PubAck: a lost connection answers them at once. */
  readonly #pending = new Set<Pending>();
  /** Publishes waiting for the end of this turn of the event loop (see #sendGathered). */
  #gathered: (() => void)[] = [];
  /** Deliveries holding a window slot, for close(). */
  readonly #active = new Set<Promise<void>>();

  constructor(options: NatsSinkOptions) {
    const settings = natsSettings(options);
    this.#settings = settings;
    this.subject = settings.subject;
    this.bucket = settings.bucket;
    this.maxMessageSize = settings.maxMessageSize;
    this.#redactedServers = settings.redactedServers;
    this.#publishTimeout = settings.publishTimeout;
    this.#window = new InFlightWindow(settings.window);
    this.#backoff = new ReconnectBackoff(settings.reconnectDelay);
    this.#logger = settings.logger;
  }

  /** Creates a sink and makes its first connection (see start()). */
  static async open(options: NatsSinkOptions, start: SinkStartOptions = {}): Promise<NatsSink> {
    const sink = new NatsSink(options);
    await sink.start(start);
    return sink;
  }

  /**
   * Connects, creates what `declare` asks for and opens the bucket. Rejects with one sentence if the server
   * cannot be reached or refuses: nothing retries then. Once started, nats.js reconnects by itself.
   */
  async start({ retryInBackground = false }: SinkStartOptions = {}): Promise<void> {
    if (this.#state !== "idle") throw new Error(`NatsSink.start(): the sink is already ${this.#state}.`);
    this.#state = "connecting";
    try {
      await this.#open();
    } catch (error) {
      const why = `Cannot start the NATS sink at ${this.#redactedServers}: ${describeError(error)}.`;
      if (!retryInBackground) {
        this.#state = "closed";
        throw new Error(why);
      }
      this.#state = "disconnected";
      this.#logger.warn(`${why} Retrying in the background; deliveries get 451 meanwhile.`);
      this.#retryStart();
    }
  }

  /** The first connection and what start() sets up on it; on failure, nothing is left open. */
  async #open(): Promise<void> {
    let nc: NatsConnection | undefined;
    try {
      const { connect, jetstream, jetstreamManager } = await loadClient();
      nc = await connect(connectionOptions(this.#settings, () => this.#backoff.next()));
      // Asks for the account's JetStream info: fails here, once, when JetStream is not enabled.
      const jsm = await jetstreamManager(nc, { timeout: this.#publishTimeout });
      if (this.#settings.declare) await declareStream(jsm, this.#settings.declare, this.#logger);
      this.#js = jetstream(nc, { timeout: this.#publishTimeout });
      if (this.bucket !== null)
        this.#objects = await openBucket(this.#js, this.bucket, this.#settings.declare);
    } catch (error) {
      await nc?.close().catch(() => {});
      throw error;
    }
    this.#nc = nc;
    if (this.#closing.signal.aborted) {
      await nc.close().catch(() => {});
      return;
    }
    this.#state = "connected";
    this.#backoff.reset();
    void this.#followStatus(nc);
    this.#logger.info(
      `NATS sink connected to ${this.#redactedServers} (max_payload ${nc.info?.max_payload} bytes), subject "${this.subject}"`,
    );
  }

  /** start()'s first connection again, after the reconnect delay, until it succeeds or close(). */
  #retryStart(): void {
    this.#startRetry = setTimeout(() => {
      this.#startRetry = undefined;
      if (this.#closing.signal.aborted) return;
      this.#open().catch((error: unknown) => {
        if (this.#closing.signal.aborted) return;
        this.#logger.warn(
          `NATS sink: connecting to ${this.#redactedServers} failed: ${describeError(error)}`,
        );
        this.#retryStart();
      });
    }, this.#backoff.next());
    this.#startRetry.unref();
  }

  /** "connected" while deliveries can be published; otherwise they get 451 at once. */
  get state(): NatsSinkState {
    return this.#state === "connected" && this.#unanswered ? "stalled" : this.#state;
  }

  /** Window slots taken now: deliveries reading, publishing or awaiting their PubAck. */
  get inFlight(): number {
    return this.#window.inFlight;
  }

  /** The most slots ever taken at once (never more than the window). */
  get peakInFlight(): number {
    return this.#peakInFlight;
  }

  /** Bytes of messages the sink holds now (read whole, not yet acknowledged or failed). */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** The servers as host:port, without credentials, for logs. */
  get redactedServers(): string {
    return this.#redactedServers;
  }

  async deliver(envelope: StoreEnvelope, message: AsyncIterable<Buffer>): Promise<DeliveryReceipt> {
    if (envelope.to.length === 0) throw new TypeError("Cannot publish a message without recipients.");
    const id = envelope.id ?? randomUUID();
    if (!isHeaderSafeId(id)) throw new TypeError("Cannot publish a message id that is not visible ASCII.");
    const subject = this.#settings.subjectFor(envelope);
    this.#ensureUsable(); // 451 at once: never read a message the sink cannot publish now
    const leave = await this.#enterWindow();
    try {
      this.#ensureUsable(); // again: the connection may have gone, or a publish timed out, while it waited
    } catch (error) {
      leave();
      throw error;
    }
    let release: () => void = () => {};
    const active = new Promise<void>((resolve) => {
      release = () => {
        this.#active.delete(active);
        leave();
        resolve();
      };
    });
    this.#active.add(active);
    try {
      const { ack, size, settled } = await this.#publishMessage(id, envelope, subject, message);
      void settled.then(release);
      return { id, location: `nats:${ack.stream}/${ack.seq}`, size };
    } catch (error) {
      if (!(error instanceof PublishFailed)) {
        release();
        throw error;
      }
      void error.settled.then(release);
      throw error.reason;
    }
  }

  /**
   * Stops taking messages (451 from now on), waits up to closeTimeout for deliveries in flight to settle,
   * then closes the connection.
   */
  async close(): Promise<void> {
    if (this.#state === "closed" && this.#closing.signal.aborted) return;
    this.#state = "closed";
    clearTimeout(this.#startRetry);
    this.#closing.abort(unavailable("the sink is closed"));
    if (this.#active.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(this.#active),
        new Promise((resolve) => {
          timer = setTimeout(resolve, this.#settings.closeTimeout);
        }),
      ]);
      clearTimeout(timer);
    }
    const nc = this.#nc;
    this.#nc = undefined;
    if (nc && !nc.isClosed()) await nc.close().catch(() => {});
    this.#logger.info(`NATS sink closed (${this.#redactedServers})`);
  }

  /** Throws SinkUnavailable (451 at once) unless a publish can go out now. */
  #ensureUsable(): void {
    if (this.#state === "closed") throw unavailable("the sink is closed");
    if (this.#state !== "connected") throw unavailable("not connected to the server");
    if (this.#unanswered) throw unavailable("the server has not answered since a publish timed out");
  }

  /** A window slot within publishTimeout, or SinkUnavailable. */
  async #enterWindow(): Promise<() => void> {
    // A free slot is taken at once: the timer (a cost per message) only for a delivery that must wait.
    let leave = this.#window.tryEnter();
    if (!leave) {
      const timeout = AbortSignal.any([this.#closing.signal, AbortSignal.timeout(this.#publishTimeout)]);
      try {
        leave = await this.#window.enter(timeout);
      } catch {
        if (this.#closing.signal.aborted) throw unavailable("the sink is closed");
        throw unavailable(`no publish slot within ${this.#publishTimeout} ms (the server is slow)`);
      }
    }
    if (this.#window.inFlight > this.#peakInFlight) this.#peakInFlight = this.#window.inFlight;
    return leave;
  }

  /**
   * Reads the message and publishes it, whole or by claim check. Resolves with the PubAck and a promise
   * that settles when the client no longer holds the message's bytes; rejects with PublishFailed (the
   * delivery's error and that same promise) or, before anything was published, with the error itself.
   */
  async #publishMessage(
    id: string,
    envelope: StoreEnvelope,
    subject: string,
    message: AsyncIterable<Buffer>,
  ): Promise<{ ack: PubAck; size: number; settled: Promise<void> }> {
    const plain = natsMailHeaders(id, envelope);
    const inline = this.#inlineLimit(plain);
    const head = await readUpTo(message, Math.min(inline, this.maxMessageSize));
    if (head.rest === null) {
      this.#ensureUsable(); // the connection may have gone while the message was read
      const body = head.chunks.length === 1 ? (head.chunks[0] as Buffer) : Buffer.concat(head.chunks);
      this.#heldBytes += body.length;
      const published = this.#publish(subject, body, plain);
      const settled = published.settled.then(() => {
        this.#heldBytes -= body.length;
      });
      const ack = await published.ack.catch((reason: Error) => {
        throw new PublishFailed(reason, settled);
      });
      return { ack, size: body.length, settled };
    }
    if (head.size > this.maxMessageSize) {
      await head.rest.return?.();
      throw messageTooBig(this.maxMessageSize, "the sink's maximum message size");
    }
    if (this.bucket === null || !this.#objects) {
      await head.rest.return?.();
      throw messageTooBig(inline, "what one NATS message carries (no claim-check bucket)");
    }
    const claim = await putObject(this.#objects, this.bucket, id, head, {
      maxMessageSize: this.maxMessageSize,
      publishTimeout: this.#publishTimeout,
      ensureUsable: () => this.#ensureUsable(),
      classify: (error, what) => this.#classify(error, what),
    });
    this.#ensureUsable();
    const published = this.#publish(subject, Buffer.alloc(0), natsMailHeaders(id, envelope, claim));
    const ack = await published.ack.catch(async (reason: Error) => {
      // Refused: the stream message will never exist, so nobody would fetch the object. Uncertain (no
      // PubAck, connection lost): it may exist, so the object stays for its consumer (or the bucket's TTL).
      if (!(reason instanceof SinkUnavailable)) await this.#objects?.delete(claim.name).catch(() => {});
      throw new PublishFailed(reason, published.settled);
    });
    return { ack, size: claim.size, settled: published.settled };
  }

  /** Bytes of body that fit in one NATS message with these headers (the server's max_payload counts both). */
  #inlineLimit(headerPairs: [string, string][]): number {
    const maxPayload = this.#nc?.info?.max_payload ?? 1024 * 1024;
    // The header block as nats.js writes it: "NATS/1.0\r\n", "Name: value\r\n" each, then "\r\n".
    let headerBytes = "NATS/1.0\r\n\r\n".length;
    for (const [name, value] of headerPairs) headerBytes += Buffer.byteLength(`${name}: ${value}\r\n`);
    return Math.max(0, maxPayload - headerBytes);
  }

  /**
   * Publishes and awaits the PubAck. `ack` settles with the answer, or with SinkUnavailable on a timeout or
   * a lost connection; `settled` once the client's request is over (its bytes are then no longer held).
   * The publish goes out with the others of this turn of the event loop (see #sendGathered).
   */
  #publish(
    subject: string,
    body: Buffer,
    headerPairs: [string, string][],
  ): { ack: Promise<PubAck>; settled: Promise<void> } {
    let answered = false;
    let answer: (error: Error | null, ack?: PubAck) => void = () => {};
    const ack = new Promise<PubAck>((resolve, reject) => {
      answer = (error, value) => {
        answered = true;
        if (error) reject(error);
        else resolve(value as PubAck);
      };
    });
    const pending: Pending = { answer: (error) => answer(error) };
    this.#pending.add(pending);
    const settled = new Promise<void>((resolve) => {
      this.#gathered.push(() => {
        // Answered while it waited (the connection was lost, the sink closed): it never goes out.
        if (answered) return resolve();
        const js = this.#js as JetStreamClient;
        // The request is over: its bytes are let go (settled) no later than the delivery hears the answer.
        js.publish(subject, body, { headers: toMsgHdrs(headerPairs), timeout: this.#publishTimeout }).then(
          (value) => {
            resolve();
            answer(null, value);
          },
          (error: unknown) => {
            resolve();
            answer(this.#classify(error, subject));
          },
        );
      });
      if (this.#gathered.length === 1) setImmediate(() => this.#sendGathered());
    });
    return {
      ack,
      settled: settled.finally(() => {
        this.#pending.delete(pending);
      }),
    };
  }

  /**
   * Hands this turn's publishes to the client together, so that it writes them to the socket at once (it
   * flushes in a microtask after the first): many sessions' messages that end in one turn of the event loop
   * leave in one write instead of one each. Nothing waits longer than that turn.
   */
  #sendGathered(): void {
    const gathered = this.#gathered;
    this.#gathered = [];
    for (const send of gathered) send();
  }

  /** The server refused (an API error, no stream for the subject): a refusal; anything else: unavailable. */
  #classify(error: unknown, what: string): Error {
    if (error instanceof loaded().JetStreamApiError)
      return sinkRefusal("NATS sink", `${what}: ${error.message}`);
    // nats.js's name for "no responders": no stream listens on the subject (not exported as a class).
    if (error instanceof Error && error.name === "JetStreamNotEnabled")
      return sinkRefusal("NATS sink", `no stream takes ${what}`);
    if (error instanceof Error && error.name === "TimeoutError") {
      this.#awaitAnswer();
      return unavailable(`no PubAck within ${this.#publishTimeout} ms for ${what}`);
    }
    if (this.#state !== "connected") return unavailable("the connection to the server was lost");
    return unavailable(`publish failed: ${describeError(error)}`);
  }

  /** After a timeout: take nothing new until a PING is answered (or the connection is made again). */
  #awaitAnswer(): void {
    const nc = this.#nc;
    if (this.#unanswered || !nc) return;
    this.#unanswered = true;
    this.#logger.warn(`NATS sink: a PubAck timed out; answering 451 until ${this.#redactedServers} answers`);
    nc.flush().then(
      () => {
        if (this.#nc === nc) this.#unanswered = false;
      },
      () => {}, // the connection went: the reconnect clears it
    );
  }

  async #followStatus(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      switch (status.type) {
        case "disconnect":
          if (this.#state === "closed") break;
          this.#state = "disconnected";
          this.#logger.warn(`NATS sink lost ${this.#redactedServers}; answering 451 until it reconnects`);
          for (const pending of this.#pending)
            pending.answer(unavailable("the connection to the server was lost"));
          break;
        case "reconnect":
          if (this.#state === "closed") break;
          this.#state = "connected";
          this.#unanswered = false;
          this.#backoff.reset();
          this.#logger.info(`NATS sink reconnected to ${this.#redactedServers}`);
          break;
        case "error":
          this.#logger.warn(`NATS sink: ${describeError(status.error)}`);
          break;
        case "staleConnection":
          this.#logger.warn(`NATS sink: ${this.#redactedServers} stopped answering PINGs; reconnecting`);
          break;
      }
    }
    if (this.#state !== "closed") {
      this.#state = "closed";
      this.#logger.error(`NATS sink: the connection to ${this.#redactedServers} closed for good`);
    }
  }
}

/** A publish failed after it was sent: the delivery's error, and when the client lets go of its bytes. */
class PublishFailed extends Error {
  constructor(
    readonly reason: Error,
    readonly settled: Promise<void>,
  ) {
    super(reason.message);
  }
}

function toMsgHdrs(pairs: [string, string][]) {
  const headers = loaded().natsHeaders();
  for (const [name, value] of pairs) headers.set(name, value);
  return headers;
}

/** The server cannot take the message now: a spool may. */
function unavailable(why: string): SinkUnavailable {
  return new SinkUnavailable("NATS sink", why);
}
