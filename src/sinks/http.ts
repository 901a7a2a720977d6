/**
 * HttpSink: a MessageStore that POSTs each message to an HTTP(S) endpoint (a webhook) and resolves only on
 * its 2xx, so that the 250 means the endpoint took the message. Usable from a hook:
 *
 *     const sink = new HttpSink({ url: "https://mail.example/inbound", secret: process.env.SINK_SECRET });
 *     onMessageStream: (ctx, stream) => sink.deliver({ from, to, id, session: sessionFacts(ctx) }, stream)
 *
 * The request (see docs/sinks-http.md and http-signature.ts):
 *
 *     POST <url path> HTTP/1.1
 *     Content-Type: message/rfc822
 *     Mailgate-Message-Id: <id>
 *     Mailgate-Timestamp: <Unix seconds>
 *     Mailgate-Envelope: <base64url of the UTF-8 JSON {"from","to","session"}>
 *     Content-Length: <n>, Content-Digest, Mailgate-Signature     (a message of up to bufferMessagesUpTo)
 *     Transfer-Encoding: chunked, Trailer: Content-Digest, Mailgate-Signature       (a larger one)
 *
 *     <the message as received>
 *
 * Why node:http and not fetch: Node 20's fetch is undici, but undici's Agent (its bounded pool) is not
 * reachable without adding undici as a dependency, and fetch cannot send request trailers, which carry the
 * signature of a streamed body. node:http's keep-alive Agent bounds the sockets (maxSockets), streams the
 * request body with backpressure (write() and 'drain') and sends trailers (addTrailers).
 */
import { createHash, randomUUID } from "node:crypto";
import { Agent as HttpAgent, type IncomingMessage, type OutgoingHttpHeaders, request } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { ConnectionOptions } from "node:tls";
import { SmtpError } from "../protocol/errors.js";
import type { DeliveryReceipt, MessageStore, StoreEnvelope } from "../store/store.js";
import { readUpTo, wholeHead } from "./collect.js";
import { isHeaderSafeId } from "./header-safe-id.js";
import { httpSinkSignature } from "./http-signature.js";
import { encodeMailgateEnvelope } from "./mailgate-envelope.js";
import { describeError, SinkUnavailable, sinkRefusal } from "./sink-error.js";
import { Deadline, InFlightWindow } from "./window.js";

export interface HttpSinkOptions {
  /** The endpoint: an http:// or https:// URL without credentials (put those in `headers`). */
  url: string | URL;
  /**
   * The shared secret the requests are signed with (HMAC-SHA256), at least 16 bytes; 32 random bytes
   * suit. Read it from a file or the environment, never from a command line (visible in `ps`). The sink
   * keeps it in a private field: it is never logged, and util.inspect does not show it.
   */
  secret: string | Buffer;
  /**
   * Milliseconds any wait on the HTTP side may take: for a place in the window, for the endpoint to take
   * more of a streamed body, and for its answer once the whole message is sent (default 10,000; keep it
   * well below the server's ioCmdTimeout). A buffered message's whole request, the wait for a place
   * included, takes at most this long. Past it the request is aborted and the message answered 451.
   */
  requestTimeout?: number;
  /** Connections to the endpoint at most (a keep-alive pool; default 16). */
  maxSockets?: number;
  /**
   * Requests in flight at most (default maxSockets); further deliveries wait, up to requestTimeout, with
   * their SMTP session backed up meanwhile.
   */
  maxInFlight?: number;
  /**
   * Messages of up to this many bytes are read whole before their request starts, sent with a
   * Content-Length and signed in a header (default 131,072; 0 streams every message). Larger ones are
   * streamed as they arrive, signed in a trailer: they hold a connection while the SMTP client sends.
   */
  bufferMessagesUpTo?: number;
  /**
   * Milliseconds an idle keep-alive connection is kept (default 4,000): below the endpoint's own idle
   * timeout (Node's server: 5,000), so that the sink does not send on a connection the endpoint is closing.
   */
  idleSocketTimeout?: number;
  /** Further request headers, e.g. an Authorization for a proxy in front of the endpoint. */
  headers?: Record<string, string>;
  /** TLS options for https:// (a private CA, a client certificate...). */
  tls?: Pick<ConnectionOptions, "ca" | "cert" | "key" | "servername" | "rejectUnauthorized">;
}

/** A refusal body is read up to this many bytes. */
const MAX_ANSWER_BYTES = 4096;
/** Replies an endpoint may choose (x5z: mail system status; not 421 or 521, which close the session). */
const REFUSAL_CODE = /^[45]5\d$/;

export class HttpSink implements MessageStore {
  readonly url: URL;
  readonly requestTimeout: number;
  readonly bufferMessagesUpTo: number;
  readonly #secret: Buffer;
  readonly #agent: HttpAgent;
  /** Where each request goes, worked out of `url` once rather than for every request. */
  readonly #target: { protocol: string; hostname: string; port: string | undefined; path: string };
  readonly #window: InFlightWindow;
  readonly #headers: Record<string, string>;
  /** Deliveries not yet settled, for close(). */
  readonly #active = new Set<Promise<unknown>>();
  #closing = false;

  constructor(options: HttpSinkOptions) {
    const url = new URL(options.url);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`Invalid HttpSink url: ${url.protocol} is not http: or https:.`);
    }
    if (url.username || url.password) {
      throw new TypeError("Invalid HttpSink url: it holds credentials; pass them in the headers option.");
    }
    const secret = typeof options.secret === "string" ? Buffer.from(options.secret) : options.secret;
    if (!Buffer.isBuffer(secret) || secret.length < 16) {
      throw new TypeError("Invalid HttpSink secret: it must be at least 16 bytes (32 random bytes suit).");
    }
    const positive = (name: string, value: number | undefined, fallback: number, min = 1): number => {
      const chosen = value ?? fallback;
      if (!Number.isInteger(chosen) || chosen < min) {
        throw new TypeError(`Invalid HttpSink option ${name}: ${value} is not an integer >= ${min}.`);
      }
      return chosen;
    };
    this.url = url;
    this.#target = {
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: url.port || undefined,
      path: `${url.pathname}${url.search}`,
    };
    this.requestTimeout = positive("requestTimeout", options.requestTimeout, 10_000);
    this.bufferMessagesUpTo = positive("bufferMessagesUpTo", options.bufferMessagesUpTo, 128 * 1024, 0);
    const maxSockets = positive("maxSockets", options.maxSockets, 16);
    this.#window = new InFlightWindow(positive("maxInFlight", options.maxInFlight, maxSockets));
    this.#secret = Buffer.from(secret);
    this.#headers = { ...options.headers };
    const agentOptions = {
      keepAlive: true,
      maxSockets,
      maxFreeSockets: maxSockets,
      timeout: positive("idleSocketTimeout", options.idleSocketTimeout, 4_000),
      scheduling: "lifo" as const,
    };
    this.#agent =
      url.protocol === "https:"
        ? new HttpsAgent({ ...agentOptions, ...options.tls })
        : new HttpAgent(agentOptions);
  }

  /** Requests in flight now. */
  get inFlight(): number {
    return this.#window.inFlight;
  }

  /** Deliveries waiting for a place in the window. */
  get waiting(): number {
    return this.#window.waiting;
  }

  /**
   * POSTs the message; resolves on a 2xx that came after the whole body was sent. Rejects with the
   * endpoint's refusal (a JSON body, see refusalFrom), else SmtpError 451 4.3.0; with the message's own
   * error if `message` fails (the request is then aborted: the endpoint sees an incomplete request).
   */
  deliver(envelope: StoreEnvelope, message: AsyncIterable<Buffer>): Promise<DeliveryReceipt> {
    if (this.#closing) return Promise.reject(this.#unavailable("the sink is closing"));
    if (envelope.to.length === 0)
      return Promise.reject(new TypeError("Cannot send a message without recipients."));
    const id = envelope.id ?? randomUUID();
    if (!isHeaderSafeId(id)) {
      return Promise.reject(
        new TypeError(`Cannot send message id ${JSON.stringify(id)}: not visible ASCII.`),
      );
    }
    const delivery = this.#deliver(id, encodeMailgateEnvelope(envelope), message);
    this.#active.add(delivery);
    const forget = () => this.#active.delete(delivery);
    delivery.then(forget, forget);
    return delivery;
  }

  async #deliver(id: string, envelope: string, message: AsyncIterable<Buffer>): Promise<DeliveryReceipt> {
    // Read up to bufferMessagesUpTo first: a small message then costs the endpoint one quick request,
    // and a slow SMTP client cannot hold a place in the window while it sends.
    const head =
      wholeHead(message, this.bufferMessagesUpTo) ?? (await readUpTo(message, this.bufferMessagesUpTo));
    const rest = head.rest ?? undefined;
    let done = false;
    try {
      const receipt = await this.#post(id, envelope, head.chunks, rest);
      done = true;
      return receipt;
    } finally {
      // Stopped before the end (a failed request): release the message stream, as for-await would. Not
      // awaited: the session reads the rest of the message itself.
      if (!done) rest?.return?.()?.catch(() => {});
    }
  }

  async #post(
    id: string,
    envelope: string,
    head: Buffer[],
    rest: AsyncIterator<Buffer> | undefined,
  ): Promise<DeliveryReceipt> {
    let phase = "waiting for a place in the window";
    const deadline = new Deadline(this.requestTimeout, () => phase);
    deadline.arm();
    let leave: (() => void) | undefined;
    try {
      leave =
        this.#window.tryEnter() ??
        (await this.#window.enter(deadline.signal).catch((error: unknown) => {
          throw this.#unavailable(error instanceof Error ? error.message : String(error));
        }));
      if (this.#closing) throw this.#unavailable("the sink is closing");
      const timestamp = Math.floor(Date.now() / 1000).toString();
      const headers: OutgoingHttpHeaders = {
        ...this.#headers,
        "Content-Type": "message/rfc822",
        "Mailgate-Message-Id": id,
        "Mailgate-Timestamp": timestamp,
        "Mailgate-Envelope": envelope,
      };
      const sign = (hash: ReturnType<typeof createHash>) => {
        const digest = hash.digest();
        return {
          "Content-Digest": `sha-256=:${digest.toString("base64")}:`,
          "Mailgate-Signature": httpSinkSignature(this.#secret, {
            timestamp,
            id,
            envelope,
            bodySha256: digest.toString("hex"),
          }),
        };
      };
      const hash = createHash("sha256");
      for (const chunk of head) hash.update(chunk);
      let size = head.reduce((sum, chunk) => sum + chunk.length, 0);
      if (rest) headers.Trailer = "Content-Digest, Mailgate-Signature";
      else Object.assign(headers, { "Content-Length": size, ...sign(hash) });

      phase = "connecting";
      const req = request({ ...this.#target, method: "POST", agent: this.#agent, headers });
      // The deadline (or another failure) destroys the request: its error ends it, see RequestEnding.
      deadline.onAbort((reason) => req.destroy(reason instanceof Error ? reason : new Error(String(reason))));
      // The agent's idle timeout is for free connections; a request in use is bounded by the deadline
      // (a streamed body may pause while its SMTP client is slow). The agent sets it again when freed.
      req.once("socket", (socket) => socket.setTimeout(0));
      const ended = new RequestEnding(req);

      let bodySent = false;
      if (!rest) {
        phase = "sending the message";
        req.end(head.length === 1 ? head[0] : Buffer.concat(head, size));
        bodySent = true;
      } else {
        phase = "sending the message";
        /** Writes a chunk; false when the request ended (answered or failed) before it could take more. */
        const write = async (chunk: Buffer): Promise<boolean> => {
          if (req.write(chunk)) return true;
          // The endpoint takes no more for now: that wait is bounded, the SMTP client's is not ours.
          deadline.arm();
          let onDrain: (() => void) | undefined;
          const drained = new Promise<boolean>((resolve) => {
            onDrain = () => resolve(true);
            req.once("drain", onDrain);
          });
          const outcome = await ended.race(drained);
          if (onDrain) req.off("drain", onDrain);
          return outcome === true;
        };
        let writing = true;
        for (const chunk of head) {
          writing = await write(chunk);
          if (!writing) break;
        }
        head.length = 0;
        while (writing) {
          deadline.disarm();
          phase = "waiting for the SMTP client";
          const next = rest.next();
          const outcome = await ended.race(next).catch((error: unknown) => {
            // The message failed (the session aborted it): abort the request, nothing is accepted.
            deadline.abort(error);
            req.destroy(error instanceof Error ? error : new Error(String(error)));
            throw error;
          });
          phase = "sending the message";
          if (outcome === undefined) {
            next.catch(() => {});
            break;
          }
          if (outcome.done) {
            req.addTrailers(sign(hash));
            req.end();
            bodySent = true;
            break;
          }
          hash.update(outcome.value);
          size += outcome.value.length;
          writing = await write(outcome.value);
        }
      }
      deadline.arm();
      phase = bodySent ? "waiting for the answer" : phase;
      const outcome = await ended.outcome;
      if ("error" in outcome) {
        const reason = deadline.expired ? (deadline.reason as Error).message : describeError(outcome.error);
        throw this.#unavailable(reason);
      }
      const { response } = outcome;
      const status = response.statusCode ?? 0;
      if (status >= 200 && status < 300 && bodySent) {
        deadline.disarm();
        response.resume(); // read to its end, so that the connection goes back to the pool
        return { id, location: `${this.url.origin}${this.url.pathname}`, size };
      }
      if (!bodySent) req.destroy(); // the connection is mid-body: it cannot be reused
      if (status >= 200 && status < 300) {
        throw this.#refused(`answered ${status} before the whole message was sent`);
      }
      phase = `reading the ${status} answer`;
      const text = await readAnswer(response).catch(() => "");
      throw (
        refusalFrom(status, response.headers["content-type"], text, this.#where()) ??
        this.#refused(`answered ${status} ${response.statusMessage ?? ""}`.trimEnd())
      );
    } catch (error) {
      deadline.abort(error);
      throw error;
    } finally {
      deadline.disarm();
      leave?.();
    }
  }

  /**
   * Stops taking messages (further deliveries get 451), waits up to `timeoutMs` (default requestTimeout)
   * for the deliveries under way, then closes every connection: a delivery still running fails with 451.
   */
  async close(timeoutMs = this.requestTimeout): Promise<void> {
    this.#closing = true;
    let timer: NodeJS.Timeout | undefined;
    const settled = Promise.allSettled([...this.#active]);
    await Promise.race([settled, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    this.#agent.destroy();
  }

  #where(): string {
    return `HTTP sink ${this.url.origin}${this.url.pathname}`;
  }

  /** The endpoint cannot take the message now (unreachable, too slow, closing): a spool may. */
  #unavailable(reason: string): SinkUnavailable {
    return new SinkUnavailable(this.#where(), reason);
  }

  /** The endpoint answered and did not take this message: 451, never spooled. */
  #refused(reason: string): SmtpError {
    return sinkRefusal(this.#where(), reason);
  }
}

/**
 * How a request ended: the endpoint's answer or the request's error. race() waits for something else
 * unless the request ends first. (Promise.race against the long-lived ending would keep every raced
 * value, each chunk of the message, until the request ends: a listener set does not.)
 */
class RequestEnding {
  readonly outcome: Promise<{ response: IncomingMessage } | { error: unknown }>;
  #ended = false;
  readonly #waiting = new Set<() => void>();

  constructor(req: ReturnType<typeof request>) {
    this.outcome = new Promise((resolve) => {
      const end = (outcome: { response: IncomingMessage } | { error: unknown }) => {
        if (this.#ended) return;
        this.#ended = true;
        resolve(outcome);
        for (const wake of this.#waiting) wake();
        this.#waiting.clear();
      };
      req.once("response", (response) => end({ response }));
      // on(), not once(): an error after the answer (the request destroyed) must not go uncaught.
      req.on("error", (error) => end({ error }));
    });
  }

  /** `waited`'s value, or undefined as soon as the request has ended. */
  race<T>(waited: Promise<T>): Promise<T | undefined> {
    if (this.#ended) {
      waited.catch(() => {});
      return Promise.resolve(undefined);
    }
    return new Promise((resolve, reject) => {
      const wake = () => resolve(undefined);
      this.#waiting.add(wake);
      waited.then(
        (value) => {
          this.#waiting.delete(wake);
          resolve(value);
        },
        (error: unknown) => {
          this.#waiting.delete(wake);
          reject(error);
        },
      );
    });
  }
}

/** The answer's body as text, up to MAX_ANSWER_BYTES (a longer one is cut, and its connection closed). */
async function readAnswer(response: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    bytes += chunk.length;
    if (bytes >= MAX_ANSWER_BYTES) {
      response.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, MAX_ANSWER_BYTES).toString("utf8");
}

/**
 * The reply an endpoint chose for a refused message: a 4xx or 5xx status with a JSON body
 * `{"smtp": {"code": 550, "enhanced": "5.7.1", "text": "..."}}`. The code must be x5z (450-459,
 * 550-559: 421 and 521 would close the session); an enhanced code of the wrong class or form is replaced
 * by the standard one; the text keeps printable ASCII only (no CR/LF can reach the reply), at most 200
 * characters. Anything else is no refusal (undefined): the caller answers 451.
 */
export function refusalFrom(
  status: number,
  contentType: string | undefined,
  body: string,
  where = "HTTP sink",
): SmtpError | undefined {
  if (status < 400 || status > 599 || !/\bjson\b/i.test(contentType ?? "")) return undefined;
  let smtp: unknown;
  try {
    smtp = (JSON.parse(body) as { smtp?: unknown } | null)?.smtp;
  } catch {
    return undefined;
  }
  if (typeof smtp !== "object" || smtp === null) return undefined;
  const { code, enhanced, text } = smtp as { code?: unknown; enhanced?: unknown; text?: unknown };
  if (typeof code !== "number" || !Number.isInteger(code) || !REFUSAL_CODE.test(String(code))) {
    return undefined;
  }
  const classOk =
    typeof enhanced === "string" &&
    /^[45]\.\d{1,3}\.\d{1,3}$/.test(enhanced) &&
    enhanced[0] === String(code)[0];
  const cleanText =
    typeof text === "string"
      ? text
          .replace(/[^\x20-\x7e]+/g, " ")
          .replace(/ {2,}/g, " ")
          .trim()
          .slice(0, 200)
      : "";
  return new SmtpError(
    code,
    cleanText || undefined,
    classOk ? enhanced : undefined,
    `${where}: refused with HTTP ${status}: ${code}${classOk ? ` ${enhanced}` : ""} ${cleanText}`.trimEnd(),
  );
}
