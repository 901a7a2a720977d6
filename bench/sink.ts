/**
 * A sink server for the benchmark, run as a CHILD process (so its RSS is its own) by bench/servers.ts:
 *
 *   node build/bench/sink.js <kind> '<json options>'
 *
 * kinds:
 *   mailgate         SmtpServer with an onMessageData hook that discards ctx.message.data
 *   mailgate-stream  SmtpServer with an onMessageStream hook that drains the stream with `for await`
 *   mailgate-stream-events  the same, draining with 'data' and 'end' listeners
 *   mailgate-workers2  the mailgate kind's server on 2 worker processes (runWorkers): this script runs
 *                    again in each worker, which counts its own messages; the primary sums the workers'
 *                    counts (asked for as their "metrics" report) when it is told to stop
 *   smtp-server      nodemailer's smtp-server, onData draining the stream then calling back
 *   mailgate-serve-null  what `mailgate serve` does per message for any store (the Received header, the
 *                    message id, the session facts, the log line), into a store that reads each message
 *                    whole, as the broker sinks do, and keeps nothing: the part of `mailgate serve --sink`
 *                    that is not the sink's
 *   node-floor       the reference responder of bench/node-floor.ts (not a peer: see there)
 *   node-floor-stream  the same, also handing each message to a Readable drained with `for await` as
 *                    mailgate-stream's hook does, its 250 waiting for the drain (see there)
 *   http-endpoint    not an SMTP server: the endpoint of `mailgate serve --sink http://...` and of the
 *                    direct HTTP publisher (examples/http-receiver.ts checking every signature with the
 *                    secret in MAILGATE_SINK_SECRET, reading each body and discarding it)
 *
 * Each accepts everything and keeps nothing but two counters. Over the IPC channel it sends
 * { type: "ready", port } once it listens on 127.0.0.1 (port 0: any free port), and on { type: "stop" }
 * it answers { type: "count", messages, bytes } and exits (so a --cpu-prof profile gets written; the
 * workers of mailgate-workers2 are stopped first).
 */
import type { EventEmitter } from "node:events";
import type { Server } from "node:net";
import type { MessageStore, SmtpServer, SmtpServerOptions } from "../src/index.js";
import { HOST, SESSION_TIMEOUT_SECONDS } from "./util.js";

export type SinkKind =
  | "mailgate"
  | "mailgate-stream"
  | "mailgate-stream-events"
  | "mailgate-workers2"
  | "mailgate-serve-null"
  | "smtp-server"
  | "node-floor"
  | "node-floor-stream"
  | "http-endpoint";

export interface SinkOptions {
  /** Connections (and sessions) the server must serve at once: the benchmark's largest scenario. */
  maxConnections: number;
}

interface Counts {
  messages: number;
  bytes: number;
}

let messages = 0;
let bytes = 0;

function send(message: object): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) throw new Error("sink.js must be started with an IPC channel (child_process.fork)");
    process.send(message, undefined, {}, () => resolve());
  });
}

/** A server with net.Server's listen(port, host, callback): net's own, or smtp-server's (which emits its errors). */
interface Listenable extends EventEmitter {
  listen(port: number, host: string, callback: () => void): Server;
}

/** Listens on HOST, on any free port, and resolves with that port. */
function listenOnLoopback(server: Listenable): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    const listener = server.listen(0, HOST, () => {
      const address = listener.address();
      resolve(typeof address === "object" && address ? address.port : 0);
    });
  });
}

// Each kind loads only its own server's modules, so that none inflates another's RSS.

/** The options of every mailgate kind: limits raised to the benchmark's, PIPELINING on, logging at warn. */
function mailgateOptions(options: SinkOptions): SmtpServerOptions {
  return {
    ports: 0,
    hosts: HOST,
    maxProcessings: options.maxConnections,
    maxConnections: options.maxConnections,
    maxMessageSize: 0, // unlimited: the 50 MB and 1 GB scenarios
    pipeliningExtension: true,
    ioCmdTimeout: SESSION_TIMEOUT_SECONDS * 1000,
    loggerSeverity: "warn",
  };
}

/** The server of the mailgate kind: an onMessageData hook that counts the buffered message and drops it. */
function discardingServer(Server: typeof SmtpServer, options: SinkOptions): SmtpServer {
  return new Server({
    ...mailgateOptions(options),
    onMessageData(ctx) {
      bytes += ctx.message.data.length;
      messages++;
    },
  });
}

/** How the mailgate kinds take a message: buffered, or streamed and drained one of two ways. */
type Intake = "data" | "for-await" | "events";

async function startMailgate(intake: Intake, options: SinkOptions): Promise<number> {
  const { SmtpServer } = await import("../src/index.js");
  const server =
    intake === "for-await"
      ? new SmtpServer({
          ...mailgateOptions(options),
          async onMessageStream(_ctx, stream) {
            for await (const chunk of stream) bytes += (chunk as Buffer).length;
            messages++;
          },
        })
      : intake === "events"
        ? new SmtpServer({
            ...mailgateOptions(options),
            onMessageStream: (_ctx, stream) =>
              new Promise<void>((resolve, reject) => {
                stream.on("data", (chunk: Buffer) => {
                  bytes += chunk.length;
                });
                stream.on("error", reject);
                stream.on("end", () => {
                  messages++;
                  resolve();
                });
              }),
          })
        : discardingServer(SmtpServer, options);
  await server.start();
  return server.ports[0] as number;
}

/** `mailgate serve`'s server (createStoringServer) into a store that reads each message whole and drops it. */
async function startServeIntoNothing(options: SinkOptions): Promise<number> {
  const { createStoringServer } = await import("../src/cli/serve.js");
  const { readWholeMessage } = await import("../src/sinks/collect.js");
  const nothing: MessageStore = {
    async deliver(envelope, message) {
      const size = (await readWholeMessage(message, Number.MAX_SAFE_INTEGER)).length;
      bytes += size;
      messages++;
      return { id: envelope.id ?? "", location: "discarded", size };
    },
  };
  // As the benchmark starts `mailgate serve`: its default log (info, to standard output) and limits.
  const server = createStoringServer(
    {
      ports: 0,
      hosts: HOST,
      maxProcessings: options.maxConnections,
      maxConnections: options.maxConnections,
      maxMessageSize: 0,
    },
    nothing,
  );
  await server.start();
  return server.ports[0] as number;
}

/**
 * The discarding server on `workers` worker processes. In the primary: resolves with the port and what
 * stops it (the workers' counts summed, then every worker stopped). In a worker: resolves with null once
 * its server has stopped (the primary's stop, or the primary gone).
 */
async function startMailgateWorkers(
  workers: number,
  options: SinkOptions,
): Promise<{ port: number; stop(): Promise<Counts> } | null> {
  const { SmtpServer, runWorkers } = await import("../src/index.js");
  const handle = await runWorkers({
    workers,
    options: mailgateOptions(options),
    create(primary) {
      primary.report({ metrics: async () => [{ messages, bytes }], readiness: async () => null });
      return discardingServer(SmtpServer, options);
    },
  });
  if (handle.role === "worker") {
    await handle.stopped;
    return null;
  }
  const address = handle.addresses[0] ?? "";
  return {
    port: Number(address.slice(address.lastIndexOf(":") + 1)),
    async stop() {
      const total: Counts = { messages: 0, bytes: 0 };
      for (const { pid, report } of await handle.workerReports("metrics", 5000)) {
        if (report?.kind !== "metrics") throw new Error(`worker ${pid} did not report its count`);
        const counts = report.metrics[0] as Counts;
        total.messages += counts.messages;
        total.bytes += counts.bytes;
      }
      await handle.stop();
      return total;
    },
  };
}

async function startSmtpServer(options: SinkOptions): Promise<number> {
  const { SMTPServer } = await import("smtp-server");
  const server = new SMTPServer({
    // Comparable to mailgate's defaults: no AUTH, no STARTTLS, no reverse DNS, no logging, no size limit
    // (smtp-server has none unless `size` is set). Its 100 ms early-talker delay before the greeting is
    // hard-coded (smtp-connection.js init()), not an option: it stays, as every user of it gets it.
    disabledCommands: ["AUTH", "STARTTLS"],
    authOptional: true,
    disableReverseLookup: true,
    logger: false,
    maxClients: options.maxConnections,
    socketTimeout: SESSION_TIMEOUT_SECONDS * 1000,
    onData(stream, _session, callback) {
      stream.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
      });
      stream.on("end", () => {
        messages++;
        callback();
      });
    },
  });
  return listenOnLoopback(server);
}

async function startNodeFloor(options: SinkOptions, streamed: boolean): Promise<number> {
  const { createNodeFloor } = await import("./node-floor.js");
  const count = (size: number) => {
    bytes += size;
    messages++;
  };
  const server = createNodeFloor(
    count,
    streamed
      ? async (stream) => {
          // The same drain as mailgate-stream's hook; the bytes are counted at the end of data.
          for await (const chunk of stream) void chunk;
        }
      : undefined,
  );
  server.maxConnections = options.maxConnections;
  return listenOnLoopback(server);
}

/** The HTTP sink's endpoint: the example receiver with a store that reads each message and keeps nothing. */
async function startHttpEndpoint(): Promise<number> {
  const { createHttpReceiver } = await import("../examples/http-receiver.js");
  const secret = process.env.MAILGATE_SINK_SECRET;
  if (!secret) throw new Error("http-endpoint needs the signing secret in MAILGATE_SINK_SECRET");
  const discard: MessageStore = {
    async deliver(envelope, message) {
      let size = 0;
      // The receiver checks the signature at the end of the body: a message counts only once it passed.
      for await (const chunk of message) size += chunk.length;
      bytes += size;
      messages++;
      return { id: envelope.id ?? "", location: "discarded", size };
    },
  };
  const { server } = createHttpReceiver({ store: discard, secret });
  return listenOnLoopback(server);
}

async function main(): Promise<void> {
  const [kind, json] = process.argv.slice(2);
  const options: SinkOptions = { maxConnections: 1000, ...(json ? JSON.parse(json) : {}) };
  let port: number;
  // What the stop message does before the process exits: the counts of this process, by default.
  let stop = async (): Promise<Counts> => ({ messages, bytes });
  switch (kind) {
    case "mailgate":
      port = await startMailgate("data", options);
      break;
    case "mailgate-stream":
      port = await startMailgate("for-await", options);
      break;
    case "mailgate-stream-events":
      port = await startMailgate("events", options);
      break;
    case "mailgate-workers2": {
      const primary = await startMailgateWorkers(2, options);
      if (!primary) return; // a worker: it talks to its primary only
      port = primary.port;
      stop = primary.stop;
      break;
    }
    case "smtp-server":
      port = await startSmtpServer(options);
      break;
    case "mailgate-serve-null":
      port = await startServeIntoNothing(options);
      break;
    case "node-floor":
      port = await startNodeFloor(options, false);
      break;
    case "node-floor-stream":
      port = await startNodeFloor(options, true);
      break;
    case "http-endpoint":
      port = await startHttpEndpoint();
      break;
    default:
      throw new Error(
        `Unknown sink kind ${JSON.stringify(kind)}; use mailgate, mailgate-stream, mailgate-stream-events, mailgate-workers2, mailgate-serve-null, smtp-server, node-floor, node-floor-stream or http-endpoint.`,
      );
  }
  process.on("message", (message: { type?: string }) => {
    if (message?.type !== "stop") return;
    void stop()
      .then((counts) => send({ type: "count", ...counts }))
      .then(() => process.exit(0));
  });
  // The parent going away must not leave a server behind.
  process.on("disconnect", () => process.exit(0));
  await send({ type: "ready", port });
}

main().catch((error: unknown) => {
  process.stderr.write(`sink: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
