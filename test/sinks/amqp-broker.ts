/**
 * What the AMQP sink tests share: the broker (RabbitMQ at 127.0.0.1:5672, guest/guest, or a skip that
 * says what to start; under CI=true a missing broker fails) and its clean-up.
 */
import type { TestContext } from "node:test";
import amqplib from "amqplib";
import { serviceOrSkip } from "../helpers/services.js";

export const BROKER_PORT = 5672;
export const BROKER_URL = `amqp://guest:guest@127.0.0.1:${BROKER_PORT}`;

/** An admin connection and channel to the broker, closed after the test; null when the test skips. */
export async function brokerOrSkip(
  t: TestContext,
): Promise<{ model: amqplib.ChannelModel; channel: amqplib.Channel } | null> {
  const model = await serviceOrSkip(
    t,
    `RabbitMQ at 127.0.0.1:${BROKER_PORT}`,
    "`rabbitmq-server -detached`",
    () => amqplib.connect(BROKER_URL, { timeout: 3000 }),
  );
  if (!model) return null;
  model.on("error", () => {});
  const channel = await model.createChannel();
  channel.on("error", () => {});
  t.after(() => model.close().catch(() => {}));
  return { model, channel };
}

/** Deletes the queue and the exchange after the test (on a fresh connection: the test's may be gone). */
export function cleanUpAfter(t: TestContext, names: { queue?: string; exchange?: string }): void {
  t.after(async () => {
    const model = await amqplib.connect(BROKER_URL, { timeout: 3000 });
    model.on("error", () => {});
    const channel = await model.createChannel();
    channel.on("error", () => {});
    if (names.queue) await channel.deleteQueue(names.queue).catch(() => {});
    if (names.exchange) await channel.deleteExchange(names.exchange).catch(() => {});
    await model.close().catch(() => {});
  });
}

/** Every message in `queue` now (basic.get until empty), acknowledged. */
export async function drainQueue(channel: amqplib.Channel, queue: string): Promise<amqplib.GetMessage[]> {
  const messages: amqplib.GetMessage[] = [];
  for (let message = await channel.get(queue); message; message = await channel.get(queue)) {
    messages.push(message);
    channel.ack(message);
  }
  return messages;
}
