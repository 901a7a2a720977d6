/**
 * What SinkSpool costs on the happy path (the sink up): 2 KB messages delivered straight to an AmqpSink
 * against the local RabbitMQ, and through a SinkSpool wrapping an AmqpSink, 100 deliveries in flight, in
 * alternating rounds. Prints msg/s and this process's CPU per message for each. Not a test: it measures.
 *
 *   node build/bench/spool-overhead.js [messages per round, default 20000] [rounds, default 3]
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import amqplib from "amqplib";
import { AmqpSink, type MessageStore, SinkSpool } from "../src/index.js";
import { silentLogger } from "../test/helpers/clients.js";

const URL = "amqp://guest:guest@127.0.0.1:5672";
const IN_FLIGHT = 100;
const BODY = Buffer.alloc(2048, "x");

async function* oneMessage(): AsyncGenerator<Buffer> {
  yield BODY;
}

async function round(store: MessageStore, messages: number): Promise<{ rate: number; cpuUs: number }> {
  let next = 0;
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < messages) {
        next += 1;
        await store.deliver({ from: "a@example.org", to: ["b@example.com"], id: `m${next}` }, oneMessage());
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  return { rate: messages / seconds, cpuUs: (used.user + used.system) / messages };
}

async function main(): Promise<void> {
  const messages = Number(process.argv[2] ?? 20_000);
  const rounds = Number(process.argv[3] ?? 3);
  const exchange = `mailgate-bench-spool-${randomBytes(4).toString("hex")}`;
  const queue = `${exchange}-q`;
  const options = { url: URL, exchange, declare: { queue }, logger: silentLogger };
  const bare = await AmqpSink.open(options);
  const directory = await mkdtemp(join(tmpdir(), "mailgate-bench-spool-"));
  const spool = await SinkSpool.open(directory, await AmqpSink.open(options), { logger: silentLogger });
  const admin = await amqplib.connect(URL);
  const channel = await admin.createChannel();
  try {
    await round(bare, 2000); // warm-up
    await round(spool, 2000);
    for (let index = 0; index < rounds; index++) {
      for (const [name, store] of [
        ["bare AmqpSink", bare],
        ["SinkSpool(AmqpSink)", spool],
      ] as const) {
        const { rate, cpuUs } = await round(store, messages);
        console.log(
          `${name.padEnd(20)} ${rate.toFixed(0).padStart(6)} msg/s  ${cpuUs.toFixed(1)} µs CPU/msg`,
        );
        await channel.purgeQueue(queue);
      }
    }
  } finally {
    await bare.close();
    await spool.close();
    await channel.deleteQueue(queue);
    await channel.deleteExchange(exchange);
    await admin.close();
    await rm(directory, { recursive: true, force: true });
  }
}

await main();
