/**
 * Each sink's own cost, without SMTP: the sink that `mailgate serve --sink` opens (the same flags, the same
 * destination as `npm run bench` gives it) driven the way the direct publisher (the sink's ceiling) is,
 * `--in-flight` messages at a time (its `--sink-window` set to as many), each a `WholeMessage` of the benchmark's 2 KB message with its envelope
 * and session facts, in interleaved rounds with that publisher in the same process. CPU per message is this
 * process's CPU time ÷ messages; the ratio sink ÷ publisher is what the sink's code adds to the client
 * library's own work when both are driven alike (in `mailgate serve` the sink is driven by SMTP sessions,
 * fewer messages per turn of the event loop: see BENCHMARKS.md).
 *
 *   node build/bench/sink-direct.js [--sinks amqp,nats,http] [--rounds 5] [--messages 10000] [--in-flight 100]
 *
 * RabbitMQ and NATS as ../shared/services.md runs them; the HTTP endpoint is a child of its own.
 */
import { parseArgs } from "node:util";
import { parseServeFlags } from "../src/cli/flags.js";
import { openSink } from "../src/cli/open-sink.js";
import type { Logger } from "../src/server/options.js";
import { WholeMessage } from "../src/store/whole-message.js";
import { openPublisher, publishAll } from "./direct-publish.js";
import { PUBLISHED_ENVELOPE, type Publisher, publishedMessage } from "./published-message.js";
import { showSpread, spread } from "./report-format.js";
import type { SinkServerId } from "./servers.js";
import { SINK_BACKENDS } from "./sink-backends.js";

const SINKS: Record<string, SinkServerId> = {
  amqp: "mailgate-serve-amqp",
  nats: "mailgate-serve-nats",
  http: "mailgate-serve-http",
};

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** CPU µs per message and msg/s of `count` publishes through `publisher`. */
async function measure(
  publisher: Publisher,
  message: Buffer,
  count: number,
  inFlight: number,
  prefix: string,
) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await publishAll(publisher, message, count, inFlight, prefix);
  const cpu = process.cpuUsage(cpu0);
  return { cpu: (cpu.user + cpu.system) / count, rate: count / ((performance.now() - t0) / 1000) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sinks: { type: "string", default: "amqp,nats,http" },
      rounds: { type: "string", default: "5" },
      messages: { type: "string", default: "10000" },
      "in-flight": { type: "string", default: "100" },
    },
  });
  const rounds = Number(values.rounds);
  const count = Number(values.messages);
  const inFlight = Number(values["in-flight"]);
  const message = publishedMessage(2048);
  for (const name of values.sinks.split(",")) {
    const id = SINKS[name];
    if (!id) throw new Error(`Unknown sink "${name}": use amqp, nats or http.`);
    const backend = SINK_BACKENDS[id];
    const why = await backend.unavailable();
    if (why) {
      process.stdout.write(`${backend.name}: left out: ${why}\n`);
      continue;
    }
    const tag = `direct-${process.pid}-${name}`;
    const destination = await backend.prepare({ maxConnections: inFlight, tag });
    try {
      const env = { ...process.env, ...destination.env };
      Object.assign(process.env, destination.env); // the publisher reads its secret from there
      // Driven alike: the sink's window (and the HTTP sink's connections) as many as the publisher's.
      const flags = parseServeFlags([...destination.flags, "--sink-window", String(inFlight)]).sink;
      if (!flags) throw new Error(`no sink in ${destination.flags.join(" ")}`);
      const { store } = await openSink(flags, env, quiet);
      const viaSink: Publisher = {
        async publish(bytes, messageId) {
          await store.deliver({ ...PUBLISHED_ENVELOPE, id: messageId }, new WholeMessage(bytes));
        },
        close: async () => store.close?.(),
      };
      const publisher = await openPublisher(destination.publishTarget, inFlight);
      const figures = {
        sink: [] as { cpu: number; rate: number }[],
        publisher: [] as { cpu: number; rate: number }[],
      };
      await measure(viaSink, message, count / 5, inFlight, `${tag}-warm-s`);
      await measure(publisher, message, count / 5, inFlight, `${tag}-warm-p`);
      for (let round = 0; round < rounds; round++) {
        figures.sink.push(await measure(viaSink, message, count, inFlight, `${tag}-${round}-s`));
        figures.publisher.push(await measure(publisher, message, count, inFlight, `${tag}-${round}-p`));
      }
      await viaSink.close();
      await publisher.close();
      const ratios = figures.sink.map((s, i) => s.cpu / (figures.publisher[i]?.cpu ?? Number.NaN));
      const micros = (value: number) => value.toFixed(0);
      process.stdout.write(
        `${backend.name}: sink ${showSpread(spread(figures.sink.map((f) => f.cpu)), micros)} µs/msg, ${showSpread(spread(figures.sink.map((f) => f.rate)), micros)} msg/s; publisher ${showSpread(spread(figures.publisher.map((f) => f.cpu)), micros)} µs/msg, ${showSpread(spread(figures.publisher.map((f) => f.rate)), micros)} msg/s; sink ÷ publisher (CPU, round by round) ${showSpread(spread(ratios), (v) => `${v.toFixed(2)}x`)}\n`,
      );
    } finally {
      await destination.dispose();
    }
  }
  process.stdout.write(
    `(${rounds} interleaved rounds of ${count} messages, ${inFlight} in flight, median and spread)\n`,
  );
}

await main();
