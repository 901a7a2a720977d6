/**
 * What the AMQP sink tests share: the broker (RabbitMQ at 127.0.0.1:5672, guest/guest, or a skip that
 * says what to start; under CI=true a missing broker fails) and its clean-up.
 */
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import amqplib from "amqplib";
import { AmqpSink, type AmqpSinkOptions } from "../../src/index.js";
import { silentLogger } from "../helpers/clients.js";
import { serviceOrSkip } from "../helpers/services.js";
import { TcpProxy } from "../helpers/tcp-proxy.js";
import { uniqueName } from "./sink-server.js";

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

/**
 * An AmqpSink of the test's own (its exchange and quorum queue, deleted afterwards) whose connection to the
 * broker passes through a TcpProxy the test can cut, stall and restore; null when the test skips. Both are
 * closed after the test.
 */
export async function proxiedSinkOrSkip(
  t: TestContext,
  what: string,
  options: Partial<AmqpSinkOptions> = {},
): Promise<{ sink: AmqpSink; proxy: TcpProxy; channel: amqplib.Channel; queue: string } | null> {
  const broker = await brokerOrSkip(t);
  if (!broker) return null;
  const exchange = uniqueName(what);
  const queue = `${exchange}-q`;
  cleanUpAfter(t, { queue, exchange });
  const proxy = await TcpProxy.start(BROKER_PORT);
  t.after(() => proxy.close());
  const sink = await AmqpSink.open({
    url: `amqp://guest:guest@127.0.0.1:${proxy.port}`,
    exchange,
    declare: { queue },
    logger: silentLogger,
    ...options,
  });
  t.after(() => sink.close());
  return { sink, proxy, channel: broker.channel, queue };
}

/**
 * Asserts that every message that got a 250 (`accepted`, by message id) is in `queued`, byte-exact;
 * returns how many copies of each id the queue held (a retried publish may have made two).
 */
export function assertQueueHoldsAccepted(
  queued: readonly amqplib.GetMessage[],
  accepted: ReadonlyMap<string, Buffer>,
): Map<string, number> {
  const copies = new Map<string, number>();
  for (const received of queued) {
    const id = String(received.properties.messageId);
    copies.set(id, (copies.get(id) ?? 0) + 1);
    const sent = accepted.get(id);
    if (sent) assert.deepEqual(received.content, sent, `message ${id} byte-exact`);
  }
  const missing = [...accepted.keys()].filter((id) => !copies.has(id));
  assert.deepEqual(missing, [], "every message that got 250 is in the queue");
  return copies;
}
