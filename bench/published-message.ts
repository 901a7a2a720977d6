/**
 * What the direct publishers (the sinks' ceilings, bench/direct-publish.ts) send: the benchmark's 2 KB
 * message, with the envelope and session facts that `mailgate serve` gives its sink for a message from
 * smtp-source, and the shape every publisher has.
 */
import type { StoreEnvelope } from "../src/store/store.js";
import { messageShape } from "./load.js";
import { HOST } from "./util.js";

/** One connection to the sink's destination, publishing the way mailgate's sink does. */
export interface Publisher {
  /** Resolves once the destination holds the message (the broker's confirm, the endpoint's 2xx). */
  publish(message: Buffer, id: string): Promise<void>;
  close(): Promise<void>;
}

/** The envelope of every published message (the id is set per message). */
export const PUBLISHED_ENVELOPE: StoreEnvelope = {
  from: "a@x.test",
  to: ["b@y.test"],
  session: {
    clientAddress: HOST,
    clientPort: 40_000,
    clientName: HOST,
    helo: "localhost",
    tls: null,
    authenticatedAs: null,
    smtputf8: false,
    body: "",
  },
};

/** The load client's message with `bodyBytes` of body, as one Buffer. */
export function publishedMessage(bodyBytes: number): Buffer {
  const shape = messageShape(bodyBytes);
  return Buffer.concat([shape.head, ...Array.from({ length: shape.blocks }, () => shape.block), shape.tail]);
}
