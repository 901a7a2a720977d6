/**
 * Drives an SmtpSession without any socket: bytes in, the exact reply bytes out. Transcript tests use it
 * to state every exchange byte for byte.
 */
import type { SessionContext } from "../../src/protocol/context.js";
import { createContext } from "../../src/protocol/context.js";
import { SmtpError } from "../../src/protocol/errors.js";
import type { SessionHooks } from "../../src/protocol/hooks.js";
import { type SessionConfig, type SessionTransport, SmtpSession } from "../../src/protocol/session.js";

export const TEST_CONFIG: SessionConfig = {
  hostname: "mx.test",
  lmtp: false,
  crlfMode: "ensure",
  pipelining: true,
  internationalization: true,
  chunking: false,
  dsn: false,
  requireTls: false,
  tls: false,
  tlsRequired: false,
  auth: { mode: "forbidden", mechanisms: ["PLAIN", "LOGIN"], overPlaintext: false, maxFailures: 5 },
  maxMessageSize: 1024 * 1024,
  maxRecipients: 100,
  maxBadCommands: 20,
  maxRecipientRefusals: 20,
  heloStrict: false,
  maxCommandLineLength: 512,
  ioBufferMaxSize: 1024 * 1024,
  messageChunkSize: 64 * 1024,
  logDialog: false,
};

export interface DeliveredMessage {
  from: string;
  to: string[];
  data: Buffer;
}

export interface Harness {
  session: SmtpSession;
  ctx: SessionContext;
  /** Messages that reached onMessageData. */
  messages: DeliveredMessage[];
  /** Everything the session wrote, in order. */
  written: string[];
  closed: boolean;
  /** receive() said "no more" and the session has not called inputConsumed() since. */
  paused: boolean;
  logs: string[];
  /** Feeds bytes (each array item as its own chunk), waits until handled, returns what was written meanwhile. */
  send(...chunks: (string | Buffer)[]): Promise<string>;
}

export function newContext(): SessionContext {
  return createContext({
    localIp: "127.0.0.1",
    localPort: 25,
    remoteIp: "127.0.0.1",
    remotePort: 40000,
    localResponse: "mx.test ESMTP ready",
    heloResponse: "mx.test at your service",
  });
}

/**
 * Starts a session (greeting consumed unless `keepGreeting`) with no-op hooks unless overridden.
 * `earlyInput` is fed to the session before `start()`: a client that talks before the greeting.
 */
export async function openSession(
  options: {
    config?: Partial<SessionConfig>;
    hooks?: Partial<SessionHooks>;
    keepGreeting?: boolean;
    earlyInput?: (string | Buffer)[];
    /** Extra transport properties, e.g. xclientTrusted. */
    transport?: Partial<SessionTransport>;
  } = {},
): Promise<Harness & { greeting: string }> {
  const written: string[] = [];
  const messages: DeliveredMessage[] = [];
  const logs: string[] = [];
  let cursor = 0;
  const harness = {
    closed: false,
    paused: false,
  } as Harness;
  const transport: SessionTransport = {
    write: (text) => {
      written.push(text);
      return true;
    },
    close: () => {
      harness.closed = true;
    },
    inputConsumed: () => {
      harness.paused = false;
    },
    commandCompleted: () => {},
    dataReceived: () => {},
    ...options.transport,
  };
  const hooks: SessionHooks = {
    onConnect: () => {},
    onHelo: () => {},
    onMailFrom: () => undefined,
    onRcptTo: () => undefined,
    onMessageDataStart: () => {},
    onMessageDataReceiving: () => {},
    onMessageDataHeaders: () => {},
    onMessageData: (ctx) => {
      messages.push({ from: ctx.envelope.from, to: [...ctx.envelope.to], data: ctx.message.data });
    },
    onProcessLineUnknown: () => {},
    onAuth: () => {
      throw SmtpError.code(535);
    },
    log: (_ctx, severity, message) => {
      logs.push(`${severity}: ${message}`);
    },
    ...options.hooks,
  };
  const ctx = newContext();
  const session = new SmtpSession({ ...TEST_CONFIG, ...options.config }, hooks, transport, ctx);
  const drain = () => {
    const text = written.slice(cursor).join("");
    cursor = written.length;
    return text;
  };
  Object.assign(harness, {
    session,
    ctx,
    messages,
    written,
    logs,
    async send(...chunks: (string | Buffer)[]) {
      for (const chunk of chunks) {
        if (!session.receive(typeof chunk === "string" ? Buffer.from(chunk, "latin1") : chunk)) {
          harness.paused = true;
        }
        await session.whenIdle();
      }
      return drain();
    },
  });
  for (const chunk of options.earlyInput ?? []) {
    session.receive(typeof chunk === "string" ? Buffer.from(chunk, "latin1") : chunk);
  }
  await session.start();
  const greeting = options.keepGreeting ? "" : drain();
  return Object.assign(harness, { greeting });
}
