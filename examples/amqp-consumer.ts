/**
 * The other end of AmqpSink: consumes a queue and writes each message to a Maildir, with the envelope
 * read back from the message's headers (x-mailgate-from, x-mailgate-to). A message is acknowledged only
 * once the Maildir store has made it durable; if storing fails it is requeued, so nothing is lost between
 * the broker and the disk.
 *
 * Delivery is at-least-once: a message whose confirm was lost (or whose ack here was) arrives again with
 * the same AMQP message id. A consumer that must not store a copy twice remembers the ids it has stored.
 *
 *   AMQP_URL=amqp://user:password@host/vhost AMQP_QUEUE=mail MAILDIR=./Maildir node build/examples/amqp-consumer.js
 *
 */
import { pathToFileURL } from "node:url";
import amqplib from "amqplib";
import { envelopeFromAmqpHeaders, MaildirStore, type MessageStore } from "mailgate";

export interface AmqpConsumer {
  /** Messages stored and acknowledged so far. */
  readonly stored: number;
  /** Cancels the consumer and closes the connection (messages not yet acknowledged go back to the queue). */
  stop(): Promise<void>;
}

export async function consumeIntoStore(
  url: string,
  queue: string,
  store: MessageStore,
  { prefetch = 16, onError = (error: Error) => console.error(error.message) } = {},
): Promise<AmqpConsumer> {
  const connection = await amqplib.connect(url);
  connection.on("error", onError);
  const channel = await connection.createChannel();
  // At most `prefetch` messages unacknowledged at once: memory stays bounded whatever the queue's depth.
  await channel.prefetch(prefetch);
  let stored = 0;
  const { consumerTag } = await channel.consume(queue, (message) => {
    if (!message) return; // the queue was deleted
    void (async () => {
      try {
        const envelope = envelopeFromAmqpHeaders(message.properties.headers, message.properties.messageId);
        await store.deliver(envelope, once(message.content));
        stored += 1;
        channel.ack(message);
      } catch (error) {
        onError(error as Error);
        channel.nack(message, false, true);
      }
    })();
  });
  return {
    get stored() {
      return stored;
    },
    async stop() {
      await channel.cancel(consumerTag).catch(() => {});
      await connection.close().catch(() => {});
    },
  };
}

async function* once(content: Buffer): AsyncGenerator<Buffer> {
  yield content;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { AMQP_URL, AMQP_QUEUE, MAILDIR } = process.env;
  if (!AMQP_URL || !AMQP_QUEUE || !MAILDIR) {
    console.error("Set AMQP_URL, AMQP_QUEUE and MAILDIR (the URL holds the password: keep it out of ps).");
    process.exit(1);
  }
  const store = await MaildirStore.open(MAILDIR);
  const consumer = await consumeIntoStore(AMQP_URL, AMQP_QUEUE, store);
  console.log(`consuming ${AMQP_QUEUE} into ${MAILDIR}; Ctrl-C stops`);
  process.once("SIGINT", () => {
    void consumer.stop().then(() => store.close());
  });
}
