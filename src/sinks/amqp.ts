/**
 * AmqpSink: a MessageStore that publishes each message to RabbitMQ (AMQP 0-9-1) and resolves only once
 * the broker has confirmed it, so that the 250 means "a broker holds it".
 *
 * - One connection and one confirm channel; many publishes in flight at once (confirms arrive
 *   asynchronously and amqplib matches them to their publish by delivery tag), at most `window` of them.
 * - Every publish is persistent (delivery mode 2) and `mandatory`: a message no queue takes comes back as a
 *   basic.return before its ack, which is matched to its publish by message id (an ack alone would look
 *   like success).
 * - Any failure (nack, return, no confirm within publishTimeout, connection or channel lost, not connected)
 *   rejects with SmtpError 451 4.3.0: the client keeps the message and sends it again. A message whose
 *   confirm did not arrive may nevertheless be in the broker: delivery is at-least-once, and a consumer
 *   recognises a copy by its message id.
 * - Reconnects are the sink's job: after a loss it reconnects in the background with a bounded, jittered
 *   backoff, and while it is not connected deliver() answers 451 at once.
 *
 * The wire format (body, properties, headers) is documented in docs/sinks-rabbitmq.md.
 */
import { randomUUID } from "node:crypto";
import type amqplib from "amqplib";
import { defaultLogger } from "../server/logger.js";
import type { Logger } from "../server/options.js";
import type { DeliveryReceipt, MessageStore, StoreEnvelope } from "../store/store.js";
import { amqpHeaders } from "./amqp-headers.js";
import {
  type AmqpDeclareOptions,
  addPending,
  closeLink,
  gatherWrites,
  type Link,
  onReturn,
  openLink,
  type Pending,
  removePending,
} from "./amqp-link.js";
import { readWholeMessage } from "./collect.js";
import { domainTemplate } from "./domain-template.js";
import { ReconnectBackoff, reconnectDelay } from "./reconnect-backoff.js";
import { describeError, SinkUnavailable, sinkRefusal } from "./sink-error.js";
import { positiveInteger, type SinkStartOptions } from "./sink-options.js";

export { AMQP_HEADERS, envelopeFromAmqpHeaders } from "./amqp-headers.js";
export type { AmqpDeclareOptions } from "./amqp-link.js";

type Message = amqplib.Message;

/** RabbitMQ's default max_message_size since 3.8 (128 MiB; the broker refuses larger bodies). */
export const RABBITMQ_MAX_MESSAGE_SIZE = 128 * 1024 * 1024;

export interface AmqpSinkOptions {
  /**
   * amqp://user:password@host:port/vhost or amqps://... (credentials and vhost percent-encoded). The URL
   * carries the password: read it from a file or the environment, never from a command line; the sink
   * never logs it (only the URL without its password).
   */
  url: string;
  /** The exchange to publish to; "" is the default exchange (the routing key is then a queue name). */
  exchange: string;
  /**
   * The routing key, a template: `{domain}` is replaced by the domain of the first recipient, lower-cased
   * ("" when it has none); everything else is literal. Default "{domain}". One publish per message.
   */
  routingKey?: string;
  /** Quick start: declare the exchange (and a quorum queue bound to it) on every connect. Default: none. */
  declare?: AmqpDeclareOptions;
  /** Milliseconds a delivery waits for a window slot, and again for its confirm. Default 10,000. */
  publishTimeout?: number;
  /** Publishes in flight at most (read, published, not yet confirmed). Default 256. */
  window?: number;
  /** Largest message in bytes (the broker's max_message_size). Default 128 MiB, RabbitMQ's default. */
  maxMessageSize?: number;
  /** Milliseconds to open a connection (TCP, TLS and the AMQP handshake). Default 5,000. */
  connectTimeout?: number;
  /** AMQP heartbeat in seconds: a broker silent for about twice this is taken as gone. Default 10. */
  heartbeat?: number;
  /** Reconnect backoff in milliseconds: the first delay, doubled each attempt up to max, jittered. */
  reconnectDelay?: { min: number; max: number };
  /** Milliseconds close() waits for publishes in flight to settle. Default: publishTimeout. */
  closeTimeout?: number;
  /** Where connection events go (never the password). Default: the server's default logger. */
  logger?: Logger;
  /** TLS options for amqps:// (ca, cert, key, servername...), passed to tls.connect. */
  tls?: Record<string, unknown>;
}

export type AmqpSinkState = "idle" | "connecting" | "connected" | "disconnected" | "closed";

const DEFAULTS = {
  routingKey: "{domain}",
  publishTimeout: 10_000,
  window: 256,
  maxMessageSize: RABBITMQ_MAX_MESSAGE_SIZE,
  connectTimeout: 5_000,
  heartbeat: 10,
};

const SHORTSTR_MAX = 255;

export class AmqpSink implements MessageStore {
  readonly maxMessageSize: number;
  readonly exchange: string;
  readonly #url: string;
  readonly #redactedUrl: string;
  readonly #routingKey: (envelope: StoreEnvelope) => string;
  readonly #declare: AmqpDeclareOptions | undefined;
  readonly #publishTimeout: number;
  readonly #window: number;
  readonly #connectTimeout: number;
  readonly #heartbeat: number;
  readonly #backoff: ReconnectBackoff;
  readonly #closeTimeout: number;
  readonly #logger: Logger;
  readonly #tls: Record<string, unknown>;

  #state: AmqpSinkState = "idle";
  #link: Link | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #blocked = false;
  /** Window slots taken (a delivery from the moment it starts reading until its publish settles). */
  #inFlight = 0;
  #heldBytes = 0;
  #peakInFlight = 0;
  #slotWaiters: (() => void)[] = [];
  #settledWaiters: (() => void)[] = [];

  constructor(options: AmqpSinkOptions) {
    if (typeof options.exchange !== "string") {
      throw new TypeError('Invalid option exchange: give an exchange name ("" for the default exchange).');
    }
    this.exchange = options.exchange;
    this.#routingKey = domainTemplate("routingKey", options.routingKey ?? DEFAULTS.routingKey);
    this.#declare = options.declare;
    this.#publishTimeout = positiveInteger("publishTimeout", options.publishTimeout, DEFAULTS.publishTimeout);
    this.#window = positiveInteger("window", options.window, DEFAULTS.window);
    this.maxMessageSize = positiveInteger("maxMessageSize", options.maxMessageSize, DEFAULTS.maxMessageSize);
    this.#connectTimeout = positiveInteger("connectTimeout", options.connectTimeout, DEFAULTS.connectTimeout);
    this.#heartbeat = positiveInteger("heartbeat", options.heartbeat, DEFAULTS.heartbeat);
    const url = parseUrl(options.url, this.#heartbeat);
    this.#url = url.connect;
    this.#redactedUrl = url.redacted;
    this.#backoff = new ReconnectBackoff(reconnectDelay(options.reconnectDelay));
    this.#closeTimeout = positiveInteger("closeTimeout", options.closeTimeout, this.#publishTimeout);
    this.#logger = options.logger ?? defaultLogger;
    this.#tls = options.tls ?? {};
  }

  /** Creates a sink and makes its first connection (see start()). */
  static async open(options: AmqpSinkOptions, start: SinkStartOptions = {}): Promise<AmqpSink> {
    const sink = new AmqpSink(options);
    await sink.start(start);
    return sink;
  }

  /**
   * Connects (and declares what `declare` asks for). Rejects with one sentence if the broker cannot be
   * reached or refuses: nothing retries then, unless `retryInBackground`. Once started, a lost connection
   * is made again in the background until close().
   */
  async start({ retryInBackground = false }: SinkStartOptions = {}): Promise<void> {
    if (this.#state !== "idle") throw new Error(`AmqpSink.start(): the sink is already ${this.#state}.`);
    this.#state = "connecting";
    try {
      await this.#connect();
    } catch (error) {
      const why = `Cannot connect to RabbitMQ at ${this.#redactedUrl}: ${describeError(error)}.`;
      if (!retryInBackground) {
        this.#state = "closed";
        throw new Error(why);
      }
      this.#state = "disconnected";
      this.#logger.warn(`${why} Retrying in the background; deliveries get 451 meanwhile.`);
      this.#scheduleReconnect();
    }
  }

  /** "connected" while deliveries can be published; otherwise they get 451 at once. */
  get state(): AmqpSinkState {
    return this.#state;
  }

  /** Window slots taken now: deliveries reading, publishing or waiting for their confirm. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** The most slots ever taken at once (never more than the window). */
  get peakInFlight(): number {
    return this.#peakInFlight;
  }

  /** Bytes of message bodies the sink holds now (read, and not yet confirmed or failed). */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** The URL without its password, for logs. */
  get redactedUrl(): string {
    return this.#redactedUrl;
  }

  async deliver(envelope: StoreEnvelope, message: AsyncIterable<Buffer>): Promise<DeliveryReceipt> {
    if (envelope.to.length === 0) throw new TypeError("Cannot publish a message without recipients.");
    const messageId = envelope.id ?? randomUUID();
    if (Buffer.byteLength(messageId) > SHORTSTR_MAX) {
      throw new TypeError(`Cannot publish message id of more than ${SHORTSTR_MAX} bytes.`);
    }
    const routingKey = this.#routingKeyFor(envelope);
    this.#ensureUsable(); // 451 at once: never read a message the sink cannot publish now
    await this.#acquireSlot();
    let body: Buffer;
    let published: { outcome: Promise<void>; settled: Promise<void> };
    try {
      body = await readWholeMessage(message, this.maxMessageSize, "the broker's maximum message size");
      const link = this.#ensureUsable(); // the connection may have gone while the message was read
      published = this.#publish(link, routingKey, body, messageId, envelope);
    } catch (error) {
      this.#releaseSlot();
      throw error;
    }
    const bytes = body.length;
    this.#heldBytes += bytes;
    void published.settled.then(() => {
      this.#heldBytes -= bytes;
      this.#releaseSlot();
    });
    await published.outcome;
    return { id: messageId, location: `amqp:${this.exchange}/${routingKey}`, size: bytes };
  }

  /**
   * Stops taking messages (451 from now on), waits up to closeTimeout for publishes in flight to settle,
   * then closes the channel and the connection.
   */
  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#state = "closed";
    clearTimeout(this.#reconnectTimer);
    for (const wake of this.#slotWaiters.splice(0)) wake();
    if (this.#inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#closeTimeout);
        this.#settledWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const link = this.#link;
    this.#link = undefined;
    if (link && !link.lost) {
      link.lost = true;
      await closeLink(link, this.#closeTimeout);
    }
    this.#logger.info(`AMQP sink closed (${this.#redactedUrl})`);
  }

  /** The live link, or a 451 saying why there is none. */
  #ensureUsable(): Link {
    const link = this.#link;
    if (this.#state === "closed") throw unavailable("the sink is closed");
    if (!link || link.lost || this.#state !== "connected") throw unavailable("not connected to the broker");
    if (this.#blocked) throw unavailable("the broker is blocking publishers (resource alarm)");
    return link;
  }

  #routingKeyFor(envelope: StoreEnvelope): string {
    const key = this.#routingKey(envelope);
    if (Buffer.byteLength(key) > SHORTSTR_MAX) {
      throw sinkRefusal("AMQP sink", `routing key too long (${Buffer.byteLength(key)} bytes)`);
    }
    return key;
  }

  /** Takes a window slot, waiting at most publishTimeout (then 451). */
  async #acquireSlot(): Promise<void> {
    if (this.#inFlight < this.#window && this.#slotWaiters.length === 0) {
      this.#takeSlot();
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const wake = () => {
        clearTimeout(timer);
        if (this.#state === "closed") {
          reject(unavailable("the sink is closed"));
          return;
        }
        this.#takeSlot();
        resolve();
      };
      const timer = setTimeout(() => {
        const index = this.#slotWaiters.indexOf(wake);
        if (index >= 0) this.#slotWaiters.splice(index, 1);
        reject(unavailable(`no publish slot within ${this.#publishTimeout} ms (the broker is slow)`));
      }, this.#publishTimeout);
      this.#slotWaiters.push(wake);
    });
  }

  #takeSlot(): void {
    this.#inFlight += 1;
    if (this.#inFlight > this.#peakInFlight) this.#peakInFlight = this.#inFlight;
  }

  #releaseSlot(): void {
    this.#inFlight -= 1;
    const next = this.#slotWaiters.shift();
    if (next) next();
    else if (this.#inFlight === 0) for (const wake of this.#settledWaiters.splice(0)) wake();
  }

  /**
   * Publishes; `outcome` settles with the broker's answer or after publishTimeout, `settled` when the
   * broker answered or the link was lost. The window slot is held until `settled`: a stalled broker keeps
   * the bytes in the socket's buffer, and releasing the slot at the timeout would let memory grow without
   * bound.
   */
  #publish(
    link: Link,
    routingKey: string,
    body: Buffer,
    messageId: string,
    envelope: StoreEnvelope,
  ): { outcome: Promise<void>; settled: Promise<void> } {
    let answer: (error: Error | null) => void = () => {};
    const outcome = new Promise<void>((resolve, reject) => {
      answer = (error) => (error ? reject(error) : resolve());
    });
    let markSettled: () => void = () => {};
    const settled = new Promise<void>((resolve) => {
      markSettled = resolve;
    });
    const timer = setTimeout(
      () => answer(unavailable(`no confirm from the broker within ${this.#publishTimeout} ms`)),
      this.#publishTimeout,
    );
    let done = false;
    const pending: Pending = {
      messageId,
      returned: null,
      settle: (error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        removePending(link, pending);
        answer(error); // no effect after the timeout: the promise has settled
        markSettled();
      },
    };
    addPending(link, pending);
    try {
      link.channel.publish(
        this.exchange,
        routingKey,
        body,
        {
          mandatory: true,
          persistent: true,
          contentType: "message/rfc822",
          messageId,
          timestamp: Math.floor(Date.now() / 1000),
          headers: amqpHeaders(envelope),
        },
        (error: unknown) => {
          if (error) {
            // amqplib's nack is "message nacked"; its closing channel fails every unconfirmed publish
            // ("channel closed") before our own close listener marks the link lost: no answer, not a refusal.
            const nacked = !link.lost && error instanceof Error && error.message === "message nacked";
            pending.settle(
              nacked
                ? sinkRefusal("AMQP sink", "the broker nacked it")
                : unavailable("the broker connection was lost"),
            );
          } else if (pending.returned !== null) {
            pending.settle(sinkRefusal("AMQP sink", `the broker could not route it (${pending.returned})`));
          } else {
            pending.settle(null);
          }
        },
      );
      gatherWrites(link); // after the publish: see there
    } catch (error) {
      pending.settle(unavailable(`publish failed: ${describeError(error)}`));
    }
    return { outcome, settled };
  }

  async #connect(): Promise<void> {
    const link = await openLink({
      url: this.#url,
      exchange: this.exchange,
      connectTimeout: this.#connectTimeout,
      tls: this.#tls,
      declare: this.#declare,
      logger: this.#logger,
    });
    const { model, channel } = link;
    channel.on("return", (message: Message) => onReturn(link, message));
    channel.on("error", (error: Error) => this.#logger.warn(`AMQP channel error: ${describeError(error)}`));
    channel.on("close", () => this.#lose(link, "channel closed"));
    model.on("close", () => this.#lose(link, "connection closed"));
    model.on("blocked", (reason: string) => {
      this.#blocked = true;
      this.#logger.warn(`AMQP broker blocks publishers: ${reason}`);
    });
    model.on("unblocked", () => {
      this.#blocked = false;
      this.#logger.info("AMQP broker unblocked publishers");
    });
    if (this.#state === "closed") {
      // close() ran while this connection was being made.
      link.lost = true;
      await model.close().catch(() => {});
      return;
    }
    this.#link = link;
    this.#blocked = false;
    this.#backoff.reset();
    this.#state = "connected";
    this.#logger.info(`AMQP sink connected to ${this.#redactedUrl}, exchange "${this.exchange}"`);
  }

  /** The link is gone: fail what waits on it (451; it may have reached the broker) and reconnect. */
  #lose(link: Link, why: string): void {
    if (link.lost) return;
    link.lost = true;
    if (this.#link === link) this.#link = undefined;
    // amqplib calls the confirm callbacks of a closed channel with an error; this is for any it missed.
    for (const list of link.byMessageId.values()) {
      for (const pending of [...list]) pending.settle(unavailable("the broker connection was lost"));
    }
    link.byMessageId.clear();
    void closeLink(link, this.#connectTimeout);
    if (this.#state === "closed") return;
    this.#state = "disconnected";
    this.#logger.warn(`AMQP sink lost ${this.#redactedUrl} (${why}); answering 451 until it reconnects`);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#state === "closed" || this.#reconnectTimer) return;
    const delay = this.#backoff.next();
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#state === "closed") return;
      this.#state = "connecting";
      this.#connect().catch((error: unknown) => {
        if (this.#state === "closed") return;
        this.#state = "disconnected";
        this.#logger.warn(`AMQP reconnect to ${this.#redactedUrl} failed: ${describeError(error)}`);
        this.#scheduleReconnect();
      });
    }, delay);
    this.#reconnectTimer.unref();
  }
}

/** The broker cannot take the message now: a spool may. */
function unavailable(why: string): SinkUnavailable {
  return new SinkUnavailable("AMQP sink", why);
}

/** Checks the URL and returns it for amqplib (with the heartbeat) and without its password (for logs). */
function parseUrl(text: string, heartbeat: number): { connect: string; redacted: string } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // The text may hold a password: never repeat it.
    throw new TypeError(
      "Invalid option url: not a URL; use amqp://user:password@host:port/vhost or amqps://...",
    );
  }
  if (url.protocol !== "amqp:" && url.protocol !== "amqps:") {
    throw new TypeError(`Invalid option url: the scheme is ${url.protocol}; use amqp:// or amqps://.`);
  }
  if (!url.searchParams.has("heartbeat")) url.searchParams.set("heartbeat", String(heartbeat));
  const redacted = new URL(url.href);
  if (redacted.password) redacted.password = "***";
  return { connect: url.href, redacted: redacted.href };
}
