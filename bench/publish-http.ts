/**
 * The HTTP sink's ceiling: node:http keep-alive POSTs, one socket per request in flight, each signed and
 * shaped as HttpSink sends a buffered message (Content-Length, Content-Digest, the Mailgate-* headers),
 * resolved on a 2xx once its answer was read.
 */
import { createHash } from "node:crypto";
import { Agent, request } from "node:http";
import { httpSinkSignature } from "../src/sinks/http-signature.js";
import { encodeMailgateEnvelope } from "../src/sinks/mailgate-envelope.js";
import { PUBLISHED_ENVELOPE, type Publisher } from "./published-message.js";

export interface HttpTarget {
  kind: "http";
  /** The endpoint's URL. */
  url: string;
}

/** `secret` signs the requests; `sockets` bounds the pool (one per request in flight). */
export async function openHttpPublisher(
  target: HttpTarget,
  secret: string,
  sockets: number,
): Promise<Publisher> {
  const agent = new Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });
  const url = new URL(target.url);
  return {
    publish(message, id) {
      const envelope = encodeMailgateEnvelope({ ...PUBLISHED_ENVELOPE, id });
      const timestamp = Math.floor(Date.now() / 1000).toString();
      const digest = createHash("sha256").update(message).digest();
      const headers = {
        "Content-Type": "message/rfc822",
        "Content-Length": message.length,
        "Content-Digest": `sha-256=:${digest.toString("base64")}:`,
        "Mailgate-Message-Id": id,
        "Mailgate-Timestamp": timestamp,
        "Mailgate-Envelope": envelope,
        "Mailgate-Signature": httpSinkSignature(secret, {
          timestamp,
          id,
          envelope,
          bodySha256: digest.toString("hex"),
        }),
      };
      return new Promise((resolve, reject) => {
        const req = request(url, { method: "POST", agent, headers }, (response) => {
          response.resume();
          response.once("end", () => {
            const status = response.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve();
            else reject(new Error(`the endpoint answered ${status} to ${id}`));
          });
        });
        req.once("error", reject);
        req.end(message);
      });
    },
    async close() {
      agent.destroy();
    },
  };
}
