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
 * The wire format is in nats-headers.ts and the README, "Sinks: NATS JetStream".
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import type { JetStreamClient, JetStreamManager, PubAck } from "@nats-io/jetstream";
import type { ObjectStore } from "@nats-io/obj";
import type { Authenticator, NatsConnection, NodeConnectionOptions } from "@nats-io/transport-node";
import { SmtpError } from "../protocol/errors.js";
import { defaultLogger } from "../server/logger.js";
import type { Logger } from "../server/options.js";
import type { DeliveryReceipt, MessageStore, StoreEnvelope } from "../store/store.js";
import { type MessageHead, messageTooBig, readUpTo } from "./collect.js";
import { DOMAIN_PLACEHOLDER, domainTemplate } from "./domain-template.js";
import { type ClaimCheck, natsMailHeaders } from "./nats-headers.js";
import { describeError, SinkUnavailable, sinkRefusal } from "./sink-error.js";
import { positiveInteger, type SinkStartOptions } from "./sink-options.js";
import { InFlightWindow } from "./window.js";

/** What the sink creates on start for a quick start (nothing that needs nats-server 2.10). */
export interface NatsDeclareOptions {
  /** The stream to create (file storage, discard new) when it does not exist; an existing one is kept as it is. */
  stream: string;
  /** Its subjects. Default: the subject template up to `{domain}`, then `>` ("mail.{domain}" → "mail.>"). */
  subjects?: string[];
  /** Milliseconds JetStream remembers a Nats-Msg-Id to drop a repeated publish. Default 600,000 (10 min). */
  duplicateWindow?: number;
  /** Milliseconds a message is kept at most; 0 keeps it until a limit or a consumer removes it. Default 0. */
  maxAge?: number;
  /** Bytes the stream holds at most (then it refuses new messages); -1 unlimited. Default -1. */
  maxBytes?: number;
  /** Messages the stream holds at most (then it refuses new messages); -1 unlimited. Default -1. */
  maxMsgs?: number;
  /** Replicas of the stream and the bucket (a cluster). Default 1. */
  replicas?: number;
  /** Milliseconds the bucket keeps an object unless deleted before; 0 forever. Default 0. */
  bucketTtl?: number;
  /** Bytes the bucket holds at most (then it refuses new objects); -1 unlimited. Default -1. */
  bucketMaxBytes?: number;
}

/** TLS to the server: a `tls://` server URL, or this option, makes the connection require TLS. */
export interface NatsTlsOptions {
  /** PEM text of the CA, the client certificate and its key; or the paths of files holding them. */
  ca?: string;
  caFile?: string;
  cert?: string;
  certFile?: string;
  key?: string;
  keyFile?: string;
  /** TLS before the NATS INFO (a server with `handshake_first`). Default false. */
  handshakeFirst?: boolean;
}

export interface NatsSinkOptions {
  /**
   * `nats://host:port` or `tls://host:port` (several: a cluster). Credentials in a URL (`user:pass@`, or a
   * token as `token@`) are taken out of it and used like the options below; logs show host and port only.
   */
  servers: string | string[];
  /**
   * The subject each message is published to, a template: `{domain}` is the first recipient's domain,
   * lower-cased, or `_` when it cannot be subject tokens (none, as `<postmaster>`, or holding `*`, `>`,
   * white space or an empty label). Default "mail.{domain}".
   */
  subject?: string;
  /** The Object Store bucket of claim-checked messages; null: none (larger messages get 552). */
  bucket?: string | null;
  /** Quick start: create the stream (and the bucket) on start when they do not exist. */
  declare?: NatsDeclareOptions;
  /** Milliseconds a delivery waits for a window slot, and again for each PubAck. Default 10,000. */
  publishTimeout?: number;
  /** Deliveries in flight at most (reading, publishing, awaiting the PubAck). Default 256. */
  window?: number;
  /** Largest message in bytes (claim-checked when it does not fit one NATS message). Default 128 MiB. */
  maxMessageSize?: number;
  /** Milliseconds to open the first connection. Default 5,000. */
  connectTimeout?: number;
  /** Reconnect delay in milliseconds: the first, doubled each attempt up to max, jittered. */
  reconnectDelay?: { min: number; max: number };
  /** Milliseconds between client PINGs; two unanswered ones mark the connection stale. Default 10,000. */
  pingInterval?: number;
  /** Milliseconds close() waits for deliveries in flight. Default: publishTimeout. */
  closeTimeout?: number;
  /** Authentication (at most one kind): a token, a user and password, or a creds file (JWT + NKey seed). */
  token?: string;
  user?: string;
  pass?: string;
  credsFile?: string;
  tls?: NatsTlsOptions;
  /** The connection's name on the server (`nats server report connections`). Default "mailgate". */
  name?: string;
  /** Where connection events go (never a credential). Default: the server's default logger. */
  logger?: Logger;
}

/** "stalled": connected, but a publish timed out and the server has not answered a PING since. */
export type NatsSinkState = "idle" | "connecting" | "connected" | "stalled" | "disconnected" | "closed";

/** The largest message by default, as the AMQP sink's (RabbitMQ's default limit). */
const DEFAULT_MAX_MESSAGE_SIZE = 128 * 1024 * 1024;
const DEFAULT_BUCKET = "mailgate-messages";
/** A message id travels as a header value and an object name: visible ASCII only. */
const MESSAGE_ID = /^[\x21-\x7e]{1,256}$/;
/** Stream and bucket names: what nats-server accepts in both. */
const NAME = /^[A-Za-z0-9_-]{1,255}$/;
const NANOS_PER_MS = 1_000_000;

/** One publish whose PubAck the sink awaits: settled by the server's answer, a timeout or a lost link. */
interface Pending {
  answer(error: Error | null): void;
}

export class NatsSink implements MessageStore {
  readonly maxMessageSize: number;
  readonly subject: string;
  readonly bucket: string | null;
  readonly #subjectFor: (envelope: StoreEnvelope) => string;
  readonly #declare: Required<NatsDeclareOptions> | undefined;
  readonly #servers: string[];
  readonly #redactedServers: string;
  readonly #publishTimeout: number;
  readonly #window: InFlightWindow;
  readonly #connectTimeout: number;
  readonly #reconnectDelay: { min: number; max: number };
  readonly #pingInterval: number;
  readonly #closeTimeout: number;
  readonly #name: string;
  readonly #logger: Logger;
  readonly #auth: { token?: string; user?: string; pass?: string; credsFile?: string };
  readonly #tls: NatsTlsOptions | undefined;
  readonly #closing = new AbortController();

  #state: Exclude<NatsSinkState, "stalled"> = "idle";
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #objects: ObjectStore | undefined;
  #attempt = 0;
  /** The next try of start()'s first connection (start({ retryInBackground })). */
  #startRetry: NodeJS.Timeout | undefined;
  /** A publish timed out: nothing new is published until the server answers a PING. */
  #unanswered = false;
  #peakInFlight = 0;
  #heldBytes = 0;
  /** Publishes awaiting their PubAck: a lost connection answers them at once. */
  readonly #pending = new Set<Pending>();
  /** Deliveries holding a window slot, for close(). */
  readonly #active = new Set<Promise<void>>();

  constructor(options: NatsSinkOptions) {
    this.subject = options.subject ?? "mail.{domain}";
    this.#subjectFor = domainTemplate("subject", this.subject, subjectTokens);
    if (!isPublishSubject(this.#subjectFor({ from: "", to: ["a@example.com"] }))) {
      throw new TypeError(
        `Invalid option subject: "${this.subject}" is not a NATS subject (dot-separated tokens, no wildcards or white space).`,
      );
    }
    this.bucket = options.bucket === undefined ? DEFAULT_BUCKET : options.bucket;
    if (this.bucket !== null && !NAME.test(this.bucket)) {
      throw new TypeError(
        "Invalid option bucket: use letters, digits, - and _ (or null for no claim check).",
      );
    }
    this.#declare = options.declare ? declaration(options.declare, this.subject) : undefined;
    this.#publishTimeout = positiveInteger("publishTimeout", options.publishTimeout, 10_000);
    this.#window = new InFlightWindow(positiveInteger("window", options.window, 256));
    this.maxMessageSize = positiveInteger("maxMessageSize", options.maxMessageSize, DEFAULT_MAX_MESSAGE_SIZE);
    this.#connectTimeout = positiveInteger("connectTimeout", options.connectTimeout, 5_000);
    this.#pingInterval = positiveInteger("pingInterval", options.pingInterval, 10_000);
    const delay = options.reconnectDelay ?? { min: 250, max: 10_000 };
    this.#reconnectDelay = {
      min: positiveInteger("reconnectDelay.min", delay.min, 250),
      max: positiveInteger("reconnectDelay.max", delay.max, 10_000),
    };
    if (this.#reconnectDelay.max < this.#reconnectDelay.min) {
      throw new TypeError("Invalid option reconnectDelay: max is lower than min.");
    }
    this.#closeTimeout = positiveInteger("closeTimeout", options.closeTimeout, this.#publishTimeout);
    const servers = parseServers(options.servers);
    this.#servers = servers.hostPorts;
    this.#redactedServers = servers.redacted;
    this.#auth = authentication(options, servers.credentials);
    this.#tls = options.tls ?? (servers.tls ? {} : undefined);
    this.#name = options.name ?? "mailgate";
    this.#logger = options.logger ?? defaultLogger;
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
      nc = await connect(this.#connectionOptions());
      // Asks for the account's JetStream info: fails here, once, when JetStream is not enabled.
      const jsm = await jetstreamManager(nc, { timeout: this.#publishTimeout });
      if (this.#declare) await this.#declareStream(jsm, this.#declare);
      this.#js = jetstream(nc, { timeout: this.#publishTimeout });
      if (this.bucket !== null) this.#objects = await this.#openBucket(this.#js, this.bucket);
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
    this.#attempt = 0;
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
    }, this.#nextReconnectDelay());
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
    if (!MESSAGE_ID.test(id)) throw new TypeError("Cannot publish a message id that is not visible ASCII.");
    const subject = this.#subjectFor(envelope);
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
          timer = setTimeout(resolve, this.#closeTimeout);
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
    const free = this.#window.inFlight < this.#window.size && this.#window.waiting === 0;
    const signal = free
      ? this.#closing.signal
      : AbortSignal.any([this.#closing.signal, AbortSignal.timeout(this.#publishTimeout)]);
    let leave: () => void;
    try {
      leave = await this.#window.enter(signal);
    } catch {
      if (this.#closing.signal.aborted) throw unavailable("the sink is closed");
      throw unavailable(`no publish slot within ${this.#publishTimeout} ms (the server is slow)`);
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
    const claim = await this.#putObject(this.#objects, this.bucket, id, head);
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
   */
  #publish(
    subject: string,
    body: Buffer,
    headerPairs: [string, string][],
  ): { ack: Promise<PubAck>; settled: Promise<void> } {
    let answer: (error: Error | null, ack?: PubAck) => void = () => {};
    const ack = new Promise<PubAck>((resolve, reject) => {
      answer = (error, value) => (error ? reject(error) : resolve(value as PubAck));
    });
    const pending: Pending = { answer: (error) => answer(error) };
    this.#pending.add(pending);
    const js = this.#js as JetStreamClient;
    const request = js.publish(subject, body, {
      headers: toMsgHdrs(headerPairs),
      timeout: this.#publishTimeout,
    });
    const settled = request.then(
      (value) => answer(null, value),
      (error: unknown) => answer(this.#classify(error, subject)),
    );
    return {
      ack,
      settled: settled.finally(() => {
        this.#pending.delete(pending);
      }),
    };
  }

  /** Streams the message (its head already read) into the bucket under its id, chunk by chunk. */
  async #putObject(objects: ObjectStore, bucket: string, id: string, head: MessageHead): Promise<ClaimCheck> {
    const rest = head.rest as AsyncIterator<Buffer>;
    const queued = [...head.chunks];
    let size = head.size;
    const source = new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          const chunk = queued.shift();
          if (chunk) {
            controller.enqueue(chunk);
            return;
          }
          this.#ensureUsable(); // a lost connection ends the upload now, not after a chunk's timeout
          const next = await rest.next();
          if (next.done) {
            controller.close();
            return;
          }
          size += next.value.length;
          if (size > this.maxMessageSize)
            throw messageTooBig(this.maxMessageSize, "the sink's maximum message size");
          controller.enqueue(next.value);
        },
        cancel: async () => {
          await rest.return?.();
        },
      },
      { highWaterMark: 0 },
    );
    try {
      const info = await objects.put({ name: id }, source, { timeout: this.#publishTimeout });
      return { bucket, name: id, size: info.size };
    } catch (error) {
      await rest.return?.();
      if (error instanceof SmtpError) throw error; // 552, SinkUnavailable, or the session's own abort
      throw this.#classify(error, `object ${bucket}/${id}`);
    }
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
          this.#attempt = 0;
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

  #connectionOptions(): NodeConnectionOptions {
    const { token, user, pass, credsFile } = this.#auth;
    const authenticator: Authenticator[] = [];
    if (credsFile) authenticator.push(loaded().credsAuthenticator(() => readFileSync(credsFile)));
    return {
      servers: this.#servers,
      name: this.#name,
      timeout: this.#connectTimeout,
      reconnect: true,
      maxReconnectAttempts: -1,
      waitOnFirstConnect: false,
      // Credentials may be fixed after a failure (a rotated creds file): keep trying, never give up.
      ignoreAuthErrorAbort: true,
      reconnectDelayHandler: () => this.#nextReconnectDelay(),
      pingInterval: this.#pingInterval,
      maxPingOut: 2,
      ...(token ? { token } : {}),
      ...(user ? { user, pass } : {}),
      ...(authenticator.length ? { authenticator } : {}),
      ...(this.#tls ? { tls: { ...this.#tls } } : {}),
    };
  }

  #nextReconnectDelay(): number {
    const { min, max } = this.#reconnectDelay;
    const ceiling = Math.min(max, min * 2 ** Math.min(this.#attempt, 20));
    this.#attempt += 1;
    // Jitter: between half and all of the ceiling, so that many instances do not reconnect in step.
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  async #declareStream(jsm: JetStreamManager, declare: Required<NatsDeclareOptions>): Promise<void> {
    const existing = await jsm.streams.info(declare.stream).catch(() => null);
    if (existing) {
      this.#logger.info(`NATS sink: stream ${declare.stream} exists, kept as it is`);
    } else {
      // Only options nats-server 2.9 knows (no compression, metadata, first_seq or subject transform).
      await jsm.streams.add({
        name: declare.stream,
        subjects: declare.subjects,
        storage: loaded().StorageType.File,
        discard: loaded().DiscardPolicy.New, // a full stream refuses new mail rather than dropping accepted mail
        duplicate_window: declare.duplicateWindow * NANOS_PER_MS,
        max_age: declare.maxAge * NANOS_PER_MS,
        max_bytes: declare.maxBytes,
        max_msgs: declare.maxMsgs,
        num_replicas: declare.replicas,
      });
      this.#logger.info(`NATS sink: created stream ${declare.stream} (${declare.subjects.join(", ")})`);
    }
  }

  async #openBucket(js: JetStreamClient, bucket: string): Promise<ObjectStore> {
    const objm = new (loaded().Objm)(js);
    const declare = this.#declare;
    if (!declare) {
      return objm.open(bucket).catch((error: unknown) => {
        throw new Error(
          `the Object Store bucket "${bucket}" for large messages cannot be opened (${describeError(error)}); create it, let the sink declare it, or set bucket: null`,
        );
      });
    }
    return objm.create(bucket, {
      storage: loaded().StorageType.File,
      ttl: declare.bucketTtl * NANOS_PER_MS,
      replicas: declare.replicas,
      max_bytes: declare.bucketMaxBytes,
    });
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

type NatsClient = typeof import("./nats-client.js");

/** The @nats-io clients, once a sink's start() has loaded them (see nats-client.ts). */
let client: NatsClient | undefined;

async function loadClient(): Promise<NatsClient> {
  client ??= await import("./nats-client.js");
  return client;
}

/** The clients for code that runs only after start() (publishing, declaring, error classification). */
function loaded(): NatsClient {
  if (!client) throw new Error("NatsSink: the NATS clients are used before start() loaded them.");
  return client;
}

function toMsgHdrs(pairs: [string, string][]) {
  const headers = loaded().natsHeaders();
  for (const [name, value] of pairs) headers.set(name, value);
  return headers;
}

/** A domain as subject tokens, or "_" when it cannot be (see the subject option). */
function subjectTokens(domain: string): string {
  return /^[^\s*>.]+(\.[^\s*>.]+)*$/u.test(domain) ? domain : "_";
}

/** A subject one can publish to: dot-separated non-empty tokens, no wildcard, no white space. */
function isPublishSubject(subject: string): boolean {
  return subject
    .split(".")
    .every((token) => token !== "" && token !== "*" && token !== ">" && !/\s/u.test(token));
}

function declaration(declare: NatsDeclareOptions, subject: string): Required<NatsDeclareOptions> {
  if (typeof declare.stream !== "string" || !NAME.test(declare.stream)) {
    throw new TypeError("Invalid option declare.stream: give a stream name of letters, digits, - and _.");
  }
  let subjects = declare.subjects;
  if (subjects === undefined) {
    const at = subject.indexOf(DOMAIN_PLACEHOLDER);
    if (at < 0) subjects = [subject];
    else if (at > 0 && subject[at - 1] === ".") subjects = [`${subject.slice(0, at)}>`];
    else {
      throw new TypeError(
        `Invalid option declare.subjects: give the stream's subjects (none can be made from subject "${subject}").`,
      );
    }
  }
  const limit = (name: string, value: number | undefined, fallback: number): number => {
    const chosen = value ?? fallback;
    if (!Number.isSafeInteger(chosen) || chosen < -1 || chosen === 0) {
      throw new TypeError(`Invalid option declare.${name}: ${value} is neither a positive integer nor -1.`);
    }
    return chosen;
  };
  const duration = (name: string, value: number | undefined, fallback: number): number => {
    const chosen = value ?? fallback;
    if (!Number.isSafeInteger(chosen) || chosen < 0) {
      throw new TypeError(`Invalid option declare.${name}: ${value} is not a number of milliseconds.`);
    }
    return chosen;
  };
  return {
    stream: declare.stream,
    subjects,
    duplicateWindow: duration("duplicateWindow", declare.duplicateWindow, 600_000),
    maxAge: duration("maxAge", declare.maxAge, 0),
    maxBytes: limit("maxBytes", declare.maxBytes, -1),
    maxMsgs: limit("maxMsgs", declare.maxMsgs, -1),
    replicas: positiveInteger("declare.replicas", declare.replicas, 1),
    bucketTtl: duration("bucketTtl", declare.bucketTtl, 0),
    bucketMaxBytes: limit("bucketMaxBytes", declare.bucketMaxBytes, -1),
  };
}

/** Server URLs as host:port for nats.js, with the credentials a URL held taken out. */
function parseServers(servers: string | string[]): {
  hostPorts: string[];
  redacted: string;
  tls: boolean;
  credentials: { token?: string; user?: string; pass?: string };
} {
  const list = Array.isArray(servers) ? servers : [servers];
  if (list.length === 0) throw new TypeError("Invalid option servers: give at least one nats:// URL.");
  const hostPorts: string[] = [];
  let tls = false;
  const credentials: { token?: string; user?: string; pass?: string } = {};
  for (const text of list) {
    let url: URL;
    try {
      url = new URL(text.includes("://") ? text : `nats://${text}`);
    } catch {
      // The text may hold a password: never repeat it.
      throw new TypeError("Invalid option servers: not a URL; use nats://host:port or tls://host:port.");
    }
    if (url.protocol !== "nats:" && url.protocol !== "tls:") {
      throw new TypeError(`Invalid option servers: the scheme is ${url.protocol}; use nats:// or tls://.`);
    }
    if (url.protocol === "tls:") tls = true;
    if (url.username && url.password) {
      credentials.user = decodeURIComponent(url.username);
      credentials.pass = decodeURIComponent(url.password);
    } else if (url.username) credentials.token = decodeURIComponent(url.username);
    hostPorts.push(`${url.hostname}:${url.port || "4222"}`);
  }
  return { hostPorts, redacted: hostPorts.join(","), tls, credentials };
}

function authentication(
  options: NatsSinkOptions,
  fromUrl: { token?: string; user?: string; pass?: string },
): { token?: string; user?: string; pass?: string; credsFile?: string } {
  const auth = {
    token: options.token ?? fromUrl.token,
    user: options.user ?? fromUrl.user,
    pass: options.pass ?? fromUrl.pass,
    credsFile: options.credsFile,
  };
  const kinds = [auth.token, auth.user, auth.credsFile].filter((value) => value !== undefined).length;
  if (kinds > 1) {
    throw new TypeError("Invalid NATS sink options: give one of token, user and pass, or credsFile.");
  }
  if (auth.user !== undefined && auth.pass === undefined) {
    throw new TypeError("Invalid NATS sink options: user needs pass.");
  }
  return auth;
}

/** The server cannot take the message now: a spool may. */
function unavailable(why: string): SinkUnavailable {
  return new SinkUnavailable("NATS sink", why);
}
