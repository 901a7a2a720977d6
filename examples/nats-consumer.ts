/**
 * The other end of NatsSink: reads a JetStream stream through a durable pull consumer and writes each
 * message to a Maildir, with the envelope read back from its Mailgate-Envelope header. A claim-checked
 * message (empty body, Mailgate-Object-* headers) is streamed from its Object Store bucket into the store.
 * A message is acknowledged only once the Maildir store has made it durable (and the server has confirmed
 * the ack); only then is its object deleted. If storing fails, the message is redelivered later.
 *
 * Delivery is at-least-once: a message whose PubAck was lost (or whose ack here was) may arrive twice with
 * the same Nats-Msg-Id. A consumer that must not store a copy twice remembers the ids it has stored.
 *
 *   NATS_URL=nats://host:4222 NATS_STREAM=MAIL NATS_DURABLE=maildir MAILDIR=./Maildir node build/examples/nats-consumer.js
 *
 * (In your project, import from "mailgate" instead of "../src/index.js".)
 */
import { pathToFileURL } from "node:url";
import { AckPolicy, type JsMsg, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { type ObjectStore, Objm } from "@nats-io/obj";
import { connect, type NodeConnectionOptions } from "@nats-io/transport-node";
import {
  type ClaimCheck,
  MaildirStore,
  type MessageStore,
  readNatsMailHeaders,
  type StoreEnvelope,
} from "../src/index.js";

export interface NatsConsumer {
  /** Messages stored and acknowledged so far. */
  readonly stored: number;
  /** Stops consuming and closes the connection (messages not yet acknowledged are redelivered later). */
  stop(): Promise<void>;
}

/**
 * Consumes `stream` through the durable consumer `durable` (created if missing: explicit acks, every
 * message from the first) into `store`. At most `maxMessages` are fetched ahead of the one being stored.
 */
export async function consumeStreamIntoStore(
  connection: NodeConnectionOptions,
  stream: string,
  durable: string,
  store: MessageStore,
  { maxMessages = 16, onError = (error: Error) => console.error(error.message) } = {},
): Promise<NatsConsumer> {
  const nc = await connect(connection);
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit });
  const consumer = await jetstream(nc).consumers.get(stream, durable);
  const messages = await consumer.consume({ max_messages: maxMessages });
  const buckets = new Map<string, Promise<ObjectStore>>();
  const bucket = (name: string) => {
    let opened = buckets.get(name);
    if (!opened) {
      opened = new Objm(nc).open(name);
      buckets.set(name, opened);
    }
    return opened;
  };
  let stored = 0;

  const storeOne = async (message: JsMsg) => {
    const { id, envelope, claimCheck } = readNatsMailHeaders(
      (name) => message.headers?.get(name) || undefined,
    );
    const storeEnvelope: StoreEnvelope = { from: envelope.from, to: envelope.to, id };
    if (!claimCheck) {
      await store.deliver(storeEnvelope, once(Buffer.from(message.data)));
    } else {
      const objects = await bucket(claimCheck.bucket);
      await store.deliver(storeEnvelope, objectBody(objects, claimCheck));
    }
    // Acknowledged and confirmed before the object goes: a lost ack redelivers a message whose body is
    // still there. (A crash between the two leaves the object to the bucket's TTL.)
    await message.ackAck();
    if (claimCheck) await (await bucket(claimCheck.bucket)).delete(claimCheck.name);
    stored += 1;
  };

  const loop = (async () => {
    for await (const message of messages) {
      try {
        await storeOne(message);
      } catch (error) {
        onError(error as Error);
        message.nak(1000); // try again in a second
      }
    }
  })();

  return {
    get stored() {
      return stored;
    },
    async stop() {
      await messages.close();
      await loop;
      await nc.close();
    },
  };
}

async function* once(content: Buffer): AsyncGenerator<Buffer> {
  yield content;
}

/** The object's bytes as the store reads them; throws at the end if its digest does not match. */
async function* objectBody(objects: ObjectStore, claimCheck: ClaimCheck): AsyncGenerator<Buffer> {
  const object = await objects.get(claimCheck.name);
  if (!object) throw new Error(`Object ${claimCheck.bucket}/${claimCheck.name} is missing.`);
  for await (const chunk of object.data) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const error = await object.error;
  if (error) throw error;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { NATS_URL, NATS_STREAM, NATS_DURABLE, MAILDIR } = process.env;
  if (!NATS_URL || !NATS_STREAM || !NATS_DURABLE || !MAILDIR) {
    console.error("Set NATS_URL, NATS_STREAM, NATS_DURABLE and MAILDIR.");
    process.exit(1);
  }
  const store = await MaildirStore.open(MAILDIR);
  const consumer = await consumeStreamIntoStore({ servers: NATS_URL }, NATS_STREAM, NATS_DURABLE, store);
  console.log(`consuming ${NATS_STREAM} into ${MAILDIR}; Ctrl-C stops`);
  process.once("SIGINT", () => {
    void consumer.stop().then(() => store.close());
  });
}
