/**
 * One connection of the RabbitMQ sink with its confirm channel (a Link), and what works on it below the
 * sink: opening it (with the quick start's declarations), closing it within a bound, gathering a turn's
 * publishes into one write, and the publishes awaiting a confirm, matched to a basic.return by message id.
 */
import type { Duplex } from "node:stream";
import type amqplib from "amqplib";
import type { Logger } from "../server/options.js";
import { describeError } from "./sink-error.js";

type ChannelModel = amqplib.ChannelModel;
type ConfirmChannel = amqplib.ConfirmChannel;
type Message = amqplib.Message;
type SocketOptions = NonNullable<Parameters<typeof amqplib.connect>[1]>;

export interface AmqpDeclareOptions {
  /** The exchange's type when the sink declares it (durable). Default "topic". */
  exchangeType?: "direct" | "topic" | "fanout" | "headers";
  /** A quorum queue to declare (durable) and bind to the exchange; none when omitted. */
  queue?: string;
  /** The binding key of `queue`. Default "#" (every routing key, on a topic exchange). */
  bindingKey?: string;
}

/** One publish waiting for its confirm. */
export interface Pending {
  messageId: string;
  /** The broker returned it (unroutable): its ack means failure. */
  returned: string | null;
  settle(error: Error | null): void;
}

/** One open connection with its confirm channel and the publishes waiting on it. */
export interface Link {
  model: ChannelModel;
  channel: ConfirmChannel;
  /** Publishes awaiting a confirm, by message id, in publish order (returns come in that order too). */
  byMessageId: Map<string, Pending[]>;
  lost: boolean;
  /** The connection's socket (amqplib keeps it as `stream`), corked while a turn's publishes gather. */
  socket: Duplex | undefined;
  corked: boolean;
}

/** The socket's high-water mark: how much of a turn's publishes gatherWrites can hold in one writev. */
const GATHERED_WRITES_BYTES = 1024 * 1024;

/** Where and how to open a link. */
export interface LinkTarget {
  /** The URL for amqplib, password and heartbeat included. */
  url: string;
  exchange: string;
  connectTimeout: number;
  tls: Record<string, unknown>;
  declare: AmqpDeclareOptions | undefined;
  /** Where connection errors go. */
  logger: Logger;
}

/**
 * Connects, opens the confirm channel and declares what `declare` asks for; on failure, nothing is left
 * open. The caller listens to the link's events.
 */
export async function openLink(target: LinkTarget): Promise<Link> {
  const socketOptions: SocketOptions & { writableHighWaterMark: number } = {
    timeout: target.connectTimeout,
    noDelay: true,
    // Room for a whole turn's publishes while the socket is corked (see gatherWrites): at Node's
    // default of 16 KiB, amqplib stops after six or seven 2 KB messages and writes the rest one by one.
    // net.connect passes it to the socket (amqplib's types do not list it).
    writableHighWaterMark: GATHERED_WRITES_BYTES,
    clientProperties: { connection_name: "mailgate AmqpSink" },
    ...target.tls,
  };
  // Loaded on first use: a program that imports mailgate without this sink does not pay for amqplib.
  const { connect } = (await import("amqplib")).default;
  const model = await connect(target.url, socketOptions);
  let channel: ConfirmChannel;
  try {
    model.on("error", (error: Error) => target.logger.warn(`AMQP connection error: ${describeError(error)}`));
    channel = await model.createConfirmChannel();
    if (target.declare) await declareTopology(model, target.exchange, target.declare);
  } catch (error) {
    await model.close().catch(() => {});
    throw error;
  }
  return { model, channel, byMessageId: new Map(), lost: false, socket: socketOf(model), corked: false };
}

/** The quick start: the exchange (durable) and a quorum queue bound to it. */
async function declareTopology(
  model: ChannelModel,
  exchange: string,
  declare: AmqpDeclareOptions,
): Promise<void> {
  const channel = await model.createChannel();
  try {
    if (exchange !== "") {
      await channel.assertExchange(exchange, declare.exchangeType ?? "topic", { durable: true });
    }
    if (declare.queue !== undefined) {
      await channel.assertQueue(declare.queue, { durable: true, arguments: { "x-queue-type": "quorum" } });
      if (exchange !== "") {
        await channel.bindQueue(declare.queue, exchange, declare.bindingKey ?? "#");
      }
    }
  } finally {
    await channel.close().catch(() => {});
  }
}

/**
 * Closes the connection (and its channels), waiting at most `timeoutMs` for the broker's close-ok: a
 * broker that no longer answers, or a socket already reset, must not hold close() forever. Past the bound,
 * the socket is destroyed.
 */
export async function closeLink(link: Link, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    link.model.close().then(
      () => true,
      () => false,
    ),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  // amqplib exposes no abort: its Connection keeps the socket as `stream`.
  if (!closed) (link.model.connection as unknown as { stream?: { destroy(): void } }).stream?.destroy();
}

/** amqplib's socket (its Connection keeps it as `stream`; it exposes no accessor). */
function socketOf(model: ChannelModel): Duplex | undefined {
  return (model.connection as unknown as { stream?: Duplex }).stream;
}

/**
 * Corks the socket until amqplib has written this turn's publishes, so that they leave in one writev
 * instead of two writes each (the method and properties, then the body): amqplib writes a channel's frames
 * in a setImmediate that the channel's 'readable' event schedules, in a nextTick queued by the publish, so
 * the uncork is scheduled from a nextTick queued after the publish. Under load, when many sessions' messages end
 * in one turn of the event loop, this saves a system call (and, on loopback, the broker's receive path run
 * in this process) per frame. Should amqplib write later than that, the uncork comes first and the frames
 * are written one by one as before: nothing is ever held longer than one turn.
 */
export function gatherWrites(link: Link): void {
  const socket = link.socket;
  if (link.corked || !socket) return;
  link.corked = true;
  socket.cork();
  process.nextTick(() =>
    setImmediate(() => {
      link.corked = false;
      socket.uncork();
    }),
  );
}

/** A basic.return: the first unconfirmed publish with that message id was not routed. */
export function onReturn(link: Link, message: Message): void {
  const id = String(message.properties.messageId ?? "");
  const pending = link.byMessageId.get(id)?.find((candidate) => candidate.returned === null);
  if (!pending) return;
  const fields = message.fields as unknown as { replyCode?: number; replyText?: string; routingKey?: string };
  pending.returned = `${fields.replyCode ?? "?"} ${fields.replyText ?? "returned"}, routing key "${fields.routingKey ?? ""}"`;
}

export function addPending(link: Link, pending: Pending): void {
  const list = link.byMessageId.get(pending.messageId);
  if (list) list.push(pending);
  else link.byMessageId.set(pending.messageId, [pending]);
}

export function removePending(link: Link, pending: Pending): void {
  const list = link.byMessageId.get(pending.messageId);
  if (!list) return;
  const index = list.indexOf(pending);
  if (index >= 0) list.splice(index, 1);
  if (list.length === 0) link.byMessageId.delete(pending.messageId);
}
