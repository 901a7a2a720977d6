/**
 * The sinks that `npm run bench` sends `mailgate serve --sink` into (issue 19), one entry each: whether it
 * can be measured here, and for every run a destination of the run's own: the flags that point `mailgate
 * serve` at it, the target of the direct publisher that measures the sink's ceiling with the same
 * messages, the count check and the clean-up afterwards.
 *
 * Adding a sink (NATS JetStream, say) takes: its server id (SinkServerId and SERVER_SPECS in servers.ts),
 * an entry in SINK_BACKENDS here, and its publisher (a PublishTarget and a case in direct-publish.ts).
 */
import { randomBytes } from "node:crypto";
import { DiscardPolicy, jetstreamManager, StorageType } from "@nats-io/jetstream";
import { connect as natsConnect } from "@nats-io/transport-node";
import amqplib from "amqplib";
import type { PublishTarget } from "./direct-publish.js";
import { type ServerId, type ServeSink, type SinkServerId, type StartOptions, startSink } from "./servers.js";
import { HOST } from "./util.js";

export interface SinkDestination extends ServeSink {
  /** Where the ceiling's direct publisher sends the same messages (its secret goes in `env`). */
  publishTarget: PublishTarget;
  /** Removes what the run made (its queue and exchange, its endpoint's process); never throws. */
  dispose(): Promise<void>;
}

export interface SinkBackend {
  /** The sink, for the report. */
  name: string;
  /** How its ceiling publishes, for the report. */
  ceiling: string;
  /** Why it cannot be measured here (its broker is not running...), or undefined. */
  unavailable(): Promise<string | undefined>;
  /** A destination of the run's own (options.tag names it). */
  prepare(options: StartOptions): Promise<SinkDestination>;
}

/** RabbitMQ as every machine of the project runs it (../shared/services.md): guest/guest on loopback. */
const RABBITMQ_URL = `amqp://guest@${HOST}:5672/`;
const RABBITMQ_PASSWORD = "guest";

async function rabbitmqAdmin(): Promise<{ model: amqplib.ChannelModel; channel: amqplib.Channel }> {
  const url = new URL(RABBITMQ_URL);
  url.password = RABBITMQ_PASSWORD;
  const model = await amqplib.connect(url.href, { timeout: 5000 });
  model.on("error", () => {});
  const channel = await model.createChannel();
  channel.on("error", () => {});
  return { model, channel };
}

const rabbitmq: SinkBackend = {
  name: "RabbitMQ",
  ceiling:
    "amqplib on one confirm channel, persistent and mandatory publishes with AmqpSink's properties and headers, each awaiting its confirm",
  async unavailable() {
    try {
      await (await rabbitmqAdmin()).model.close();
      return undefined;
    } catch (error) {
      return `RabbitMQ is not reachable at ${HOST}:5672 (${(error as Error).message}): start it with \`rabbitmq-server -detached\``;
    }
  },
  async prepare(options) {
    // The run's own exchange and quorum queue, declared as --sink-declare-queue declares them, so that
    // the ceiling's publisher finds them too; deleted (with every message) after the run.
    const name = `mailgate-bench-${options.tag}`;
    const { model, channel } = await rabbitmqAdmin();
    await channel.assertExchange(name, "topic", { durable: true });
    await channel.assertQueue(name, { durable: true, arguments: { "x-queue-type": "quorum" } });
    await channel.bindQueue(name, name, "#");
    return {
      flags: ["--sink", RABBITMQ_URL, "--sink-exchange", name, "--sink-declare-queue", name],
      shownFlags: ["--sink", RABBITMQ_URL, "--sink-exchange", "<run>", "--sink-declare-queue", "<run>"],
      env: { MAILGATE_SINK_SECRET: RABBITMQ_PASSWORD },
      // mailgate's default routing key, {domain}, is the recipient's domain.
      publishTarget: { kind: "amqp", url: RABBITMQ_URL, exchange: name, routingKey: "y.test" },
      async count() {
        return (await channel.checkQueue(name)).messageCount;
      },
      async dispose() {
        await channel.deleteQueue(name).catch(() => {});
        await channel.deleteExchange(name).catch(() => {});
        await model.close().catch(() => {});
      },
    };
  },
};

/** NATS with JetStream as every machine of the project runs it: no credentials, on loopback. */
const NATS_SERVER = `${HOST}:4222`;

const natsJetStream: SinkBackend = {
  name: "NATS JetStream",
  ceiling:
    "the @nats-io clients on one connection, publishes with NatsSink's headers (Nats-Msg-Id, Mailgate-Envelope), each awaiting its PubAck",
  async unavailable() {
    try {
      const connection = await natsConnect({ servers: NATS_SERVER, timeout: 3000 });
      await (await jetstreamManager(connection)).getAccountInfo();
      await connection.close();
      return undefined;
    } catch (error) {
      return `NATS with JetStream is not reachable at ${NATS_SERVER} (${(error as Error).message}): start it as ../shared/services.md says`;
    }
  },
  async prepare(options) {
    // The run's own stream (file storage, discard new: as the sink declares one), deleted after the run.
    const name = `mailgate-bench-${options.tag}`;
    const connection = await natsConnect({ servers: NATS_SERVER, timeout: 5000 });
    const jsm = await jetstreamManager(connection);
    await jsm.streams.add({
      name,
      subjects: [`${name}.>`],
      storage: StorageType.File,
      discard: DiscardPolicy.New,
    });
    const url = (stream: string) => `nats://${NATS_SERVER}?stream=${stream}&subject=${stream}.{domain}`;
    return {
      flags: ["--sink", url(name)],
      shownFlags: ["--sink", url("<run>")],
      env: {},
      publishTarget: { kind: "nats", server: NATS_SERVER, subject: `${name}.y.test` },
      async count() {
        return (await jsm.streams.info(name)).state.messages;
      },
      async dispose() {
        await jsm.streams.delete(name).catch(() => {});
        await connection.close().catch(() => {});
      },
    };
  },
};

const httpEndpoint: SinkBackend = {
  name: "HTTP webhook",
  ceiling:
    "node:http keep-alive POSTs, signed and shaped as HttpSink sends a buffered message, each awaiting its 2xx",
  async unavailable() {
    return undefined; // its endpoint is a child of the benchmark
  },
  async prepare(options) {
    const secret = randomBytes(32).toString("hex");
    const endpoint = await startSink(
      "http-endpoint",
      { ...options, tag: `${options.tag}-endpoint` },
      { MAILGATE_SINK_SECRET: secret },
    );
    const url = `http://${HOST}:${endpoint.port}/mail`;
    return {
      flags: ["--sink", url],
      shownFlags: ["--sink", `http://${HOST}:PORT/mail`],
      env: { MAILGATE_SINK_SECRET: secret },
      publishTarget: { kind: "http", url },
      // Asked once, at the end of the run: the endpoint reports what it verified and read, then exits.
      count: () => endpoint.finish(),
      async dispose() {
        endpoint.kill();
      },
    };
  },
};

export const SINK_BACKENDS: Record<SinkServerId, SinkBackend> = {
  "mailgate-serve-amqp": rabbitmq,
  "mailgate-serve-nats": natsJetStream,
  "mailgate-serve-http": httpEndpoint,
};

/** The sink that `server` serves into, if it is one of the mailgate-serve-<sink> servers. */
export function sinkBackend(server: ServerId): SinkBackend | undefined {
  return (SINK_BACKENDS as Partial<Record<ServerId, SinkBackend>>)[server];
}
