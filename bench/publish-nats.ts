/**
 * NATS JetStream's ceiling: the @nats-io clients on one connection, each message published with the
 * headers NatsSink sets (Nats-Msg-Id, Mailgate-Envelope) and awaiting its PubAck.
 */
import { jetstream } from "@nats-io/jetstream";
import { connect, headers as natsHeaders } from "@nats-io/transport-node";
import { natsMailHeaders } from "../src/sinks/nats-headers.js";
import { PUBLISHED_ENVELOPE, type Publisher } from "./published-message.js";

export interface NatsTarget {
  kind: "nats";
  /** host:port */
  server: string;
  subject: string;
}

export async function openNatsPublisher(target: NatsTarget): Promise<Publisher> {
  const connection = await connect({ servers: target.server });
  const js = jetstream(connection);
  return {
    async publish(message, id) {
      const headers = natsHeaders();
      for (const [name, value] of natsMailHeaders(id, { ...PUBLISHED_ENVELOPE, id }))
        headers.set(name, value);
      await js.publish(target.subject, message, { headers });
    },
    async close() {
      await connection.close();
    },
  };
}
