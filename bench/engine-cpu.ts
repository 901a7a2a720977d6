/**
 * The protocol engine's own CPU per message, without sockets: a session (src/protocol/session.ts) fed the
 * dialogue of a client that waits for each reply (MAIL, RCPT, DATA, a 2 KB body), with an onMessageData
 * hook that discards the message (`data`), and with an onMessageStream hook that drains the stream, with
 * `for await` (`stream`) and with 'data' and 'end' listeners (`stream-events`): the difference between the
 * two stream rows is the consumer's idiom (Node's async iterator), not the engine. Socket reads and writes (most of a real server's time: see `npm run
 * bench:engine`) are left out, so that a change to the engine shows in a few seconds and through a busy
 * machine's noise. Rounds interleave the two; the figures are medians with their spread.
 *
 *   npm run bench:engine-cpu [-- --messages N] [--rounds N] [--sessions N] [--kind K ...]
 *
 * With --sessions N (default 1), N sessions take the messages at once, their lines interleaved as a busy
 * server's are: each session's state is then cold in the caches when its next line comes. --kind (repeatable)
 * runs only the kinds named (data, stream, stream-events), for a profile of one.
 */
import { parseArgs } from "node:util";
import { createContext } from "../src/protocol/context.js";
import type { SessionHooks } from "../src/protocol/hooks.js";
import { type SessionConfig, type SessionTransport, SmtpSession } from "../src/protocol/session.js";
import { showSpread, spread } from "./report-format.js";

const CONFIG: SessionConfig = {
  hostname: "mx.bench",
  lmtp: false,
  crlfMode: "ensure",
  pipelining: true,
  internationalization: true,
  chunking: true,
  dsn: true,
  requireTls: false,
  tls: false,
  tlsRequired: false,
  auth: { mode: "forbidden", mechanisms: [], overPlaintext: false, maxFailures: 5 },
  maxMessageSize: 10 * 1024 * 1024,
  maxRecipients: 100,
  maxBadCommands: 20,
  maxRecipientRefusals: 20,
  heloStrict: false,
  maxCommandLineLength: 512,
  ioBufferMaxSize: 1024 * 1024,
  messageChunkSize: 64 * 1024,
  logDialog: false,
};

const body = `Subject: bench\r\n\r\n${"x".repeat(76)}\r\n`.repeat(26);
const MESSAGE_LINES = [
  "MAIL FROM:<sender@example.com>\r\n",
  "RCPT TO:<recipient@example.com>\r\n",
  "DATA\r\n",
  `${body}.\r\n`,
].map((line) => Buffer.from(line, "latin1"));

const KINDS = ["data", "stream", "stream-events"] as const;
type Kind = (typeof KINDS)[number];

function hooks(kind: Kind): SessionHooks {
  const none = () => {};
  return {
    onConnect: none,
    onHelo: none,
    onMailFrom: () => undefined,
    onRcptTo: () => undefined,
    onMessageDataStart: none,
    onMessageDataReceiving: none,
    onMessageDataHeaders: none,
    onMessageData: (ctx) => {
      if (kind === "data" && ctx.message.data.length === 0) throw new Error("empty message");
    },
    ...(kind === "stream" && {
      async onMessageStream(_ctx, stream) {
        let bytes = 0;
        for await (const chunk of stream) bytes += (chunk as Buffer).length;
        if (bytes === 0) throw new Error("empty message");
      },
    }),
    ...(kind === "stream-events" && {
      onMessageStream: (_ctx, stream) =>
        new Promise<void>((resolve, reject) => {
          let bytes = 0;
          stream.on("data", (chunk: Buffer) => {
            bytes += chunk.length;
          });
          stream.on("error", reject);
          stream.on("end", () => (bytes === 0 ? reject(new Error("empty message")) : resolve()));
        }),
    }),
    onProcessLineUnknown: none,
    onAuth: () => undefined,
    log: none,
  };
}

/** A session of `kind` and the client that talks to it, waiting for each reply before its next line. */
async function openSession(kind: Kind): Promise<(line: Buffer) => Promise<void>> {
  let replies = 0;
  let waiting: (() => void) | null = null;
  const transport: SessionTransport = {
    write: () => {
      replies++;
      waiting?.();
      return true;
    },
    close: () => {},
    inputConsumed: () => {},
    commandCompleted: () => {},
    dataReceived: () => {},
  };
  const ctx = createContext({
    localIp: "127.0.0.1",
    localPort: 25,
    remoteIp: "127.0.0.1",
    remotePort: 40000,
    localResponse: "mx.bench ESMTP",
    heloResponse: "mx.bench",
  });
  const session = new SmtpSession(CONFIG, hooks(kind), transport, ctx);
  await session.start();
  const exchange = async (line: Buffer) => {
    const expected = replies + 1;
    session.receive(line);
    while (replies < expected) {
      await new Promise<void>((resolve) => {
        waiting = resolve;
      });
      waiting = null;
    }
  };
  await exchange(Buffer.from("EHLO client.example\r\n"));
  return exchange;
}

/**
 * Sends `messages` messages through `sessions` sessions at once (each client waits for its reply, so their
 * lines interleave as a busy server's do); CPU µs per message.
 */
async function run(kind: Kind, messages: number, sessions: number): Promise<number> {
  const clients = await Promise.all(Array.from({ length: sessions }, () => openSession(kind)));
  const start = process.cpuUsage();
  await Promise.all(
    clients.map(async (exchange, index) => {
      for (let i = index; i < messages; i += sessions) for (const line of MESSAGE_LINES) await exchange(line);
    }),
  );
  const used = process.cpuUsage(start);
  return (used.user + used.system) / messages;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      messages: { type: "string", default: "20000" },
      rounds: { type: "string", default: "7" },
      sessions: { type: "string", default: "1" },
      kind: { type: "string", multiple: true },
    },
  });
  const kinds = (values.kind ?? KINDS) as Kind[];
  for (const kind of kinds) {
    if (!KINDS.includes(kind)) throw new Error(`Invalid --kind ${kind}: it accepts ${KINDS.join(", ")}.`);
  }
  const messages = Number(values.messages);
  const rounds = Number(values.rounds);
  const sessions = Number(values.sessions);
  for (const kind of kinds) await run(kind, messages / 4, sessions); // warm-up: let the JIT settle first
  const figures: Record<Kind, number[]> = { data: [], stream: [], "stream-events": [] };
  for (let round = 0; round < rounds; round++) {
    for (const kind of kinds) figures[kind].push(await run(kind, messages, sessions));
  }
  const micros = (value: number) => value.toFixed(1);
  for (const kind of kinds) {
    process.stdout.write(`${kind.padEnd(13)} ${showSpread(spread(figures[kind]), micros)} µs CPU/message\n`);
  }
  process.stdout.write(
    `(${rounds} interleaved rounds of ${messages} messages over ${sessions} session${sessions === 1 ? "" : "s"}, median and spread)\n`,
  );
}

await main();
