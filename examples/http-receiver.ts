/**
 * An endpoint for HttpSink (docs/sinks-http.md): a small node:http server that checks each
 * request's signature, decodes its envelope and writes the message to a Maildir, answering 200 only once
 * the Maildir store has it durably. The body is streamed into the store and the signature checked at its
 * end (it may come in a trailer): a message whose signature fails throws inside the store's stream, which
 * leaves nothing behind, and is answered 401.
 *
 * Answers: 200 stored; 400 not a mailgate request; 401 bad or stale signature; 405 not a POST; 422 with
 * `{"smtp": {...}}` when `refuse` refuses the message (the SMTP client then gets that reply); 500 the
 * store failed (the client gets 451 and sends again). Delivery is at least once: a message whose 200 was
 * lost comes again with the same Mailgate-Message-Id, which a consumer can use to drop the second copy.
 *
 * Run it: MAILGATE_SINK_SECRET_FILE=secret.txt node build/examples/http-receiver.js  (or
 * MAILGATE_SINK_SECRET=...; PORT, default 8025; MAILDIR, default ./received). The secret is read from a
 * file or the environment, never from the command line, and never printed.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { pathToFileURL } from "node:url";
import {
  decodeMailgateEnvelope,
  MaildirStore,
  type MessageStore,
  verifyHttpSinkSignature,
  type WireEnvelope,
} from "mailgate";

export interface HttpReceiverOptions {
  store: MessageStore;
  /** The shared secret, or several while it is rotated. */
  secret: string | Buffer | (string | Buffer)[];
  /** Return an SMTP reply to refuse a message (it is still read to its end and its signature checked). */
  refuse?(envelope: WireEnvelope, id: string): { code: number; enhanced?: string; text?: string } | undefined;
  /** Called after each message is stored, before its 200. */
  onStored?(id: string, envelope: WireEnvelope, location: string): void;
}

export interface HttpReceiver {
  server: Server;
  /** How many times each message id was stored (more than once: a retry whose first 200 was lost). */
  stored: Map<string, number>;
  /** Requests refused for their signature (401). */
  badSignatures: number;
}

class BadSignature extends Error {}

export function createHttpReceiver(options: HttpReceiverOptions): HttpReceiver {
  const receiver: HttpReceiver = {
    server: createServer((req, res) => {
      handle(req, res).catch(() => res.destroy());
    }),
    stored: new Map(),
    badSignatures: 0,
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "POST") return reply(res, 405, { error: "POST only" });
    const id = header(req, "mailgate-message-id");
    const timestamp = header(req, "mailgate-timestamp");
    const envelopeValue = header(req, "mailgate-envelope");
    let envelope: WireEnvelope;
    try {
      if (!/^[\x21-\x7e]{1,256}$/.test(id) || !/^\d{1,12}$/.test(timestamp)) throw new TypeError("no id");
      envelope = decodeMailgateEnvelope(envelopeValue);
    } catch {
      return reply(res, 400, { error: "not a mailgate request" });
    }
    const parts = { timestamp, id, envelope: envelopeValue };
    const body = verifiedBody(req, (bodySha256, signature) =>
      verifyHttpSinkSignature(options.secret, { ...parts, bodySha256 }, signature),
    );
    try {
      const refusal = options.refuse?.(envelope, id);
      if (refusal) {
        for await (const _ of body); // read to the end: refusals are only given to signed requests
        return reply(res, 422, { smtp: refusal });
      }
      const receipt = await options.store.deliver(
        { ...envelope, id, session: envelope.session ?? undefined },
        body,
      );
      receiver.stored.set(id, (receiver.stored.get(id) ?? 0) + 1);
      options.onStored?.(id, envelope, receipt.location);
      return reply(res, 200, { id, stored: receipt.id });
    } catch (error) {
      if (req.destroyed && !req.complete) {
        res.destroy(); // the sink aborted the request: nothing was stored
        return;
      }
      if (error instanceof BadSignature) {
        receiver.badSignatures += 1;
        return reply(res, 401, { error: "bad signature" });
      }
      return reply(res, 500, { error: "not stored" });
    }
  }
  return receiver;
}

/** The request body, hashed as it goes; at its end the signature (header or trailer) must verify. */
async function* verifiedBody(
  req: IncomingMessage,
  verify: (bodySha256: string, signature: string | undefined) => boolean,
): AsyncGenerator<Buffer> {
  const hash = createHash("sha256");
  for await (const chunk of req as AsyncIterable<Buffer>) {
    hash.update(chunk);
    yield chunk;
  }
  const signature = req.headers["mailgate-signature"] ?? req.trailers["mailgate-signature"];
  if (!verify(hash.digest("hex"), typeof signature === "string" ? signature : undefined)) {
    throw new BadSignature("bad signature");
  }
}

function header(req: IncomingMessage, name: string): string {
  const value = req.headers[name];
  return typeof value === "string" ? value : "";
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  // A request answered before its body was read: close rather than read an unwanted body.
  if (!res.req.complete) res.setHeader("Connection", "close");
  res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(body));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.env.MAILGATE_SINK_SECRET_FILE;
  const secret = file ? readFileSync(file, "utf8").trim() : process.env.MAILGATE_SINK_SECRET;
  if (!secret) {
    console.error("Set MAILGATE_SINK_SECRET_FILE (a file holding the secret) or MAILGATE_SINK_SECRET.");
    process.exit(1);
  }
  const store = await MaildirStore.open(process.env.MAILDIR ?? "received");
  const { server } = createHttpReceiver({ store, secret });
  server.listen(Number(process.env.PORT ?? 8025), "127.0.0.1", () => {
    console.log(`http-receiver listening on ${JSON.stringify(server.address())} into ${store.directory}`);
  });
  process.once("SIGINT", () => server.close(() => void store.close()));
}
