/**
 * What the AMQP sink tests share: the broker (RabbitMQ at 127.0.0.1:5672, guest/guest, or a skip that
 * says what to start; under CI=true a missing broker fails), names unique to the run, an SMTP server whose
 * onMessageStream delivers to a sink, and a raw SMTP sender that reports each reply.
 */
import { randomBytes } from "node:crypto";
import type { TestContext } from "node:test";
import amqplib from "amqplib";
import {
  AmqpSink,
  type AmqpSinkOptions,
  SmtpServer,
  type SmtpServerOptions,
  sessionFacts,
} from "../../src/index.js";
import type { MessageStore } from "../../src/store/store.js";
import { RawClient, silentLogger } from "../helpers/clients.js";
import { TcpProxy } from "../helpers/tcp-proxy.js";

export const BROKER_PORT = 5672;
export const BROKER_URL = `amqp://guest:guest@127.0.0.1:${BROKER_PORT}`;

/** An admin connection and channel to the broker, closed after the test; null when the test skips. */
export async function brokerOrSkip(
  t: TestContext,
): Promise<{ model: amqplib.ChannelModel; channel: amqplib.Channel } | null> {
  let model: amqplib.ChannelModel;
  try {
    model = await amqplib.connect(BROKER_URL, { timeout: 3000 });
  } catch (error) {
    const what = `RabbitMQ is not reachable at 127.0.0.1:${BROKER_PORT} (${(error as Error).message})`;
    if (process.env.CI) throw new Error(`${what}; CI needs it running.`);
    t.skip(`${what}: start it with \`rabbitmq-server -detached\``);
    return null;
  }
  model.on("error", () => {});
  const channel = await model.createChannel();
  channel.on("error", () => {});
  t.after(() => model.close().catch(() => {}));
  return { model, channel };
}

/** A name no other run uses: mailgate-test-<what>-<random>. */
export function uniqueName(what: string): string {
  return `mailgate-test-${what}-${randomBytes(5).toString("hex")}`;
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
 * An SMTP server on 127.0.0.1 port 0 that delivers every message to `store` as `mailgate serve` would
 * (id and session facts included) and answers "250 ... queued as <id>"; stopped after the test.
 */
export async function startSinkServer(
  t: TestContext,
  store: MessageStore,
  options: SmtpServerOptions = {},
): Promise<number> {
  let sequence = 0;
  const run = randomBytes(3).toString("hex");
  const server = new SmtpServer({
    hosts: "127.0.0.1",
    ports: "0",
    hostname: "mx.test",
    logger: silentLogger,
    loggerSeverity: "fatal",
    ...options,
    async onMessageStream(ctx, stream) {
      const id = `${run}-${++sequence}`;
      const envelope = { from: ctx.envelope.from, to: [...ctx.envelope.to], id, session: sessionFacts(ctx) };
      const receipt = await store.deliver(envelope, stream);
      return `Ok: queued as ${receipt.id}`;
    },
  });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  return server.ports[0] as number;
}

/** The queued id in a 250 reply of startSinkServer's server, or null for any other reply. */
export function queuedId(reply: string): string | null {
  return /^250 .*queued as (\S+)/.exec(reply)?.[1] ?? null;
}

/** One transaction on an open, greeted and EHLO'd client; returns the final reply (or the first refusal). */
export async function sendOne(
  client: RawClient,
  from: string,
  to: string[],
  message: Buffer,
  { smtputf8 = false, timeoutMs = 5000 } = {},
): Promise<string> {
  const mail = await client.command(`MAIL FROM:<${from}>${smtputf8 ? " SMTPUTF8" : ""}`, timeoutMs);
  if (!mail.startsWith("250")) return mail;
  for (const rcpt of to) {
    const reply = await client.command(`RCPT TO:<${rcpt}>`, timeoutMs);
    if (!reply.startsWith("250")) return reply;
  }
  const data = await client.command("DATA", timeoutMs);
  if (!data.startsWith("354")) return data;
  await client.send(Buffer.concat([message, Buffer.from(".\r\n")]));
  return client.reply(timeoutMs);
}

/** A greeted client after EHLO. */
export async function ehloClient(port: number): Promise<RawClient> {
  const client = await RawClient.greeted(port);
  const ehlo = await client.command("EHLO client.test");
  if (!ehlo.startsWith("250")) throw new Error(`EHLO refused: ${ehlo}`);
  return client;
}
