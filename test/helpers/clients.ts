/**
 * Helpers for the server tests over loopback: a server that records what it delivers, a raw SMTP client
 * that reads whole replies, external programs (found, skipped or failed as CI demands, run with a bound),
 * and a bounded wait for conditions no event announces.
 */
import { spawn } from "node:child_process";
import { connect, createServer, type Socket } from "node:net";
import type { TestContext } from "node:test";
import type { Envelope, SessionContext } from "../../src/protocol/context.js";
import type { Logger } from "../../src/server/options.js";
import { SmtpServer, type SmtpServerOptions } from "../../src/server/server.js";

/** A logger that drops everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export interface Delivered {
  envelope: Envelope;
  data: Buffer;
  ctx: SessionContext;
}

export interface RecordingServer {
  server: SmtpServer;
  port: number;
  /** Every message that reached onMessageData, in order. */
  messages: Delivered[];
  /** Resolves when `count` messages have arrived (rejects after `timeoutMs`). */
  waitForMessages(count: number, timeoutMs?: number): Promise<Delivered[]>;
}

/**
 * An SmtpServer of the test's own on 127.0.0.1, port 0, named mx.test and silent (`options` may change
 * any of that), started, and stopped at once when the test ends.
 */
export async function startTestServer(
  t: TestContext,
  options: SmtpServerOptions,
): Promise<{ server: SmtpServer; port: number }> {
  const server = new SmtpServer({
    hosts: "127.0.0.1",
    ports: "0",
    hostname: "mx.test",
    logger: silentLogger,
    loggerSeverity: "fatal",
    ...options,
  });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  const port = server.ports[0];
  if (port === undefined || port === 0) throw new Error(`no real port bound: ${server.addresses.join()}`);
  return { server, port };
}

/**
 * Starts a server on 127.0.0.1 port 0 whose onMessageData records each message (envelope copied), and
 * stops it (immediately) when the test ends. Options override the defaults, including onMessageData,
 * which is then called after the recording.
 */
export async function startRecordingServer(
  t: TestContext,
  options: SmtpServerOptions = {},
): Promise<RecordingServer> {
  const messages: Delivered[] = [];
  const waiters: (() => void)[] = [];
  const userHook = options.onMessageData;
  const { server, port } = await startTestServer(t, {
    ...options,
    onMessageData(ctx) {
      messages.push({ envelope: structuredClone(ctx.envelope), data: ctx.message.data, ctx });
      for (const wake of waiters.splice(0)) wake();
      return userHook?.call(this, ctx);
    },
  });
  return {
    server,
    port,
    messages,
    async waitForMessages(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < count) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`expected ${count} messages, got ${messages.length}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return messages;
    },
  };
}

/**
 * A raw SMTP client: writes what it is told and reads whole replies (multi-line ones included).
 * Replies are kept as latin1 text so that byte counts stay exact.
 */
export class RawClient {
  private buffer = "";
  private wake: (() => void) | null = null;
  /** True once the server closed its side (or the socket failed). */
  ended = false;
  error: Error | null = null;
  /** Resolves when the socket is fully closed. */
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffer += chunk.toString("latin1");
      this.notify();
    });
    socket.on("end", () => {
      this.ended = true;
      this.notify();
    });
    socket.on("error", (error) => {
      this.error = error;
      this.ended = true;
      this.notify();
    });
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.once("close", () => {
      this.ended = true;
      this.notify();
    });
  }

  /**
   * Connects over TCP to `port`, or to the UNIX domain socket `port` when it is a path; from `localAddress`
   * when given (any 127.x.y.z is a loopback address of its own on Linux: a second client address).
   */
  static connect(port: number | string, host = "127.0.0.1", localAddress?: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket =
        typeof port === "string"
          ? connect({ path: port })
          : connect({ port, host, noDelay: true, ...(localAddress ? { localAddress } : {}) });
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new RawClient(socket));
      });
    });
  }

  /** Connects and reads the greeting, which must be a 220. */
  static async greeted(port: number, host = "127.0.0.1", localAddress?: string): Promise<RawClient> {
    const client = await RawClient.connect(port, host, localAddress);
    const greeting = await client.reply();
    if (!greeting.startsWith("220 ")) throw new Error(`unexpected greeting ${JSON.stringify(greeting)}`);
    return client;
  }

  /** Everything received and not yet consumed by reply(). */
  get pending(): string {
    return this.buffer;
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /** Waits for the next event (data, end) or the deadline; false when the deadline passed. */
  private waitEvent(deadline: number): Promise<boolean> {
    const left = deadline - Date.now();
    if (left <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve(false);
      }, left);
      this.wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  /** The next complete reply ("250-a\r\n250 b\r\n"), or null when the connection ends or `timeoutMs` passes first. */
  async nextReply(timeoutMs = 5000): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(this.buffer);
      if (match) {
        this.buffer = this.buffer.slice(match[0].length);
        return match[0];
      }
      if (this.ended || !(await this.waitEvent(deadline))) return null;
    }
  }

  /** Reads one complete reply, failing if none arrives within `timeoutMs`. */
  async reply(timeoutMs = 5000): Promise<string> {
    const reply = await this.nextReply(timeoutMs);
    if (reply !== null) return reply;
    throw new Error(
      this.ended
        ? `connection closed before a complete reply; got ${JSON.stringify(this.buffer)}`
        : `no complete reply within ${timeoutMs} ms; got ${JSON.stringify(this.buffer)}`,
    );
  }

  /** True when nothing at all arrives (and the connection stays open) for `ms` milliseconds. */
  async silentFor(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (this.buffer === "" && !this.ended) {
      if (!(await this.waitEvent(deadline))) return true;
    }
    return false;
  }

  /** Waits until the server has closed the connection; returns what arrived unread. */
  async untilEnd(timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (!(await this.waitEvent(deadline))) {
        throw new Error(`connection still open after ${timeoutMs} ms; got ${JSON.stringify(this.buffer)}`);
      }
    }
    const rest = this.buffer;
    this.buffer = "";
    return rest;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Writes `data`; resolves once Node has handed it to the kernel (or the connection is gone). */
  async send(data: string | Buffer): Promise<void> {
    if (this.ended || this.socket.destroyed) return;
    if (this.socket.write(data)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.socket.off("drain", done);
        this.socket.off("close", done);
        resolve();
      };
      this.socket.on("drain", done);
      this.socket.on("close", done);
    });
  }

  /** Sends one command line (CRLF added) and reads its reply. */
  async command(line: string, timeoutMs = 5000): Promise<string> {
    this.write(`${line}\r\n`);
    return this.reply(timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }

  /** Drops the connection at once (FIN, or RST when `reset`), without reading anything more. */
  drop(reset = false): void {
    if (reset) this.socket.resetAndDestroy();
    else this.socket.destroy();
    this.ended = true;
  }
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion (killing it after `timeoutMs`), feeding `input` on stdin. */
export function runProgram(
  file: string,
  args: readonly string[],
  { input, timeoutMs = 30_000 }: { input?: string | Buffer; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => {
      stdout += text;
    });
    child.stderr.setEncoding("utf8").on("data", (text: string) => {
      stderr += text;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on("error", () => {}); // a program that exits early must not crash the test with EPIPE
    child.stdin.end(input);
  });
}

/** Polls `condition` (every few ms) until it holds; fails after `timeoutMs` naming `what`. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * A loopback port free right now, for the tests that must name a port before the server binds it
 * (tlsPorts, proxyPorts, a proxy in front).
 */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const address = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return typeof address === "object" && address ? address.port : 0;
}
