/**
 * A sink's ceiling (issue 19), run as a CHILD by the benchmark (measureSinkCeiling in bench/scenarios.ts):
 *
 *   [MAILGATE_SINK_SECRET=...] node build/bench/direct-publish.js '<json PublishRequest>'
 *
 * publishes `warmup` messages (unmeasured), then `messages` measured ones, straight to the run's sink
 * destination with the client library, `inFlight` at a time and no SMTP: the benchmark's 2 KB message with
 * the envelope and session facts mailgate would send (bench/published-message.ts). Then it reports
 * { type: "result", messages, elapsedMs, cpuMs } for the measured part: wall time from the first publish to
 * the last confirm, and this process's own CPU time (the client library's work, not the broker's or the
 * endpoint's, which run in their own processes).
 *
 * A new sink is one more PublishTarget and one more case in openPublisher.
 */
import type { AmqpTarget } from "./publish-amqp.js";
import type { HttpTarget } from "./publish-http.js";
import type { NatsTarget } from "./publish-nats.js";
import { type Publisher, publishedMessage } from "./published-message.js";
import { reportToParent, runIfEntryPoint } from "./util.js";

export type PublishTarget = AmqpTarget | HttpTarget | NatsTarget;

export interface PublishRequest {
  target: PublishTarget;
  warmup: number;
  messages: number;
  /** Publishes awaiting their confirm at once. */
  inFlight: number;
  /** Body bytes of the message (the load client's message shape). */
  bodyBytes: number;
}

export interface PublishResult {
  messages: number;
  elapsedMs: number;
  /** CPU time (user + system) of this process during the measured part. */
  cpuMs: number;
}

/** The sink's secret, for the publishers that need one (given in the environment, never as an argument). */
function secret(): string {
  const value = process.env.MAILGATE_SINK_SECRET;
  if (!value) throw new Error("direct-publish needs the sink's secret in MAILGATE_SINK_SECRET");
  return value;
}

/** Each publisher loads only its own client library. */
export async function openPublisher(target: PublishTarget, inFlight: number): Promise<Publisher> {
  switch (target.kind) {
    case "amqp":
      return (await import("./publish-amqp.js")).openAmqpPublisher(target, secret());
    case "http":
      return (await import("./publish-http.js")).openHttpPublisher(target, secret(), inFlight);
    case "nats":
      return (await import("./publish-nats.js")).openNatsPublisher(target);
  }
}

/** Publishes `count` messages with ids prefix-0, prefix-1...: `inFlight` workers, each awaiting its confirm. */
export async function publishAll(
  publisher: Publisher,
  message: Buffer,
  count: number,
  inFlight: number,
  prefix: string,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const id = `${prefix}-${next++}`;
      await publisher.publish(message, id);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker));
}

async function main(): Promise<void> {
  const request = JSON.parse(process.argv[2] ?? "{}") as PublishRequest;
  const publisher = await openPublisher(request.target, request.inFlight);
  const message = publishedMessage(request.bodyBytes);
  const run = `${process.pid}-${Date.now().toString(36)}`;
  await publishAll(publisher, message, request.warmup, request.inFlight, `${run}-warmup`);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await publishAll(publisher, message, request.messages, request.inFlight, run);
  const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = process.cpuUsage(cpu0);
  await publisher.close();
  const result: PublishResult = {
    messages: request.messages,
    elapsedMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
  await reportToParent({ type: "result", ...result });
}

runIfEntryPoint(import.meta.url, main);
