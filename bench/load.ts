/**
 * Our load client over raw sockets, for what Postfix's smtp-source cannot do: PIPELINING (smtp-source
 * never pipelines and says HELO), very large messages written in large buffers (so the generator is not
 * the limit), and thousands of idle connections.
 *
 * As a library: sendMessages() and holdIdle(). As a CHILD process (the benchmark runs it so, like
 * smtp-source, so that it never shares an event loop with anything else):
 *
 *   node build/bench/load.js '{"mode":"messages","port":2525,"sessions":100,"messages":20000,
 *                              "perConnection":"many","pipelining":true,"bodyBytes":2048}'
 *   node build/bench/load.js '{"mode":"idle","port":2525,"connections":5000}'
 *
 * It reports over the IPC channel when it has one (fork), else as one JSON line on stdout.
 *
 * Dialogue, per connection: greeting, EHLO, then per message
 *   without pipelining: MAIL / RCPT / DATA / message, each awaited;
 *   with pipelining (RFC 2920): MAIL+RCPT+DATA in one write, then the message, its final dot and the
 *   next MAIL+RCPT+DATA (or QUIT) in one write: DATA and QUIT are the only group enders it sends last.
 * Every reply is checked (first digit); anything unexpected fails the run.
 */
import { connect, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { HOST, reportToParent, runIfEntryPoint } from "./util.js";

export interface MessageLoad {
  port: number;
  sessions: number;
  /** Messages in all (shared by the sessions, as smtp-source -m). */
  messages: number;
  /** One message per connection (reconnect for each) or many. */
  perConnection: "one" | "many";
  pipelining: boolean;
  /** Payload bytes after the headers, as smtp-source -l: lines of 78 characters and CRLF. */
  bodyBytes: number;
  /** Fail when no reply arrives for this long (default 60 s). */
  stallMs?: number;
}

export interface LoadResult {
  /** Messages answered 250 after their data. */
  sent: number;
  /** Message bytes (headers and body, without dot and commands) of those messages. */
  bytes: number;
  /** From the first connect to the last reply (the QUIT's 221). */
  elapsedMs: number;
  /** CPU the client used meanwhile (user + system). */
  cpuMs: number;
}

const SENDER = "a@x.test";
const RECIPIENT = "b@y.test";
const EHLO = Buffer.from("EHLO bench.x.test\r\n");
const MAIL = Buffer.from(`MAIL FROM:<${SENDER}>\r\n`);
const RCPT = Buffer.from(`RCPT TO:<${RECIPIENT}>\r\n`);
const DATA = Buffer.from("DATA\r\n");
const QUIT = Buffer.from("QUIT\r\n");
const TRANSACTION = Buffer.concat([MAIL, RCPT, DATA]);
const END = Buffer.from(".\r\n");
const EMPTY = Buffer.alloc(0);

const LINE = `${"X".repeat(78)}\r\n`;
/** The unit written for large messages: 13,107 lines of 80 bytes, about 1 MiB. */
const BLOCK_LINES = 13_107;

/** A message as headers, `blocks` times one large block, then a tail (all lines end in CRLF). */
export interface MessageShape {
  head: Buffer;
  block: Buffer;
  blocks: number;
  tail: Buffer;
  size: number;
}

export function messageShape(bodyBytes: number): MessageShape {
  const head = Buffer.from(
    `From: <${SENDER}>\r\nTo: <${RECIPIENT}>\r\nDate: Sun, 22 Nov 2026 04:00:00 +0000\r\nMessage-Id: <bench@x.test>\r\n\r\n`,
  );
  const block = Buffer.from(LINE.repeat(BLOCK_LINES));
  const blocks = Math.floor(bodyBytes / block.length);
  const rest = bodyBytes - blocks * block.length;
  const partial = rest % LINE.length;
  // A last short line takes the remainder; a remainder under 3 bytes cannot be a line and is dropped.
  const tail = Buffer.from(
    LINE.repeat(Math.floor(rest / LINE.length)) + (partial >= 3 ? `${"X".repeat(partial - 2)}\r\n` : ""),
  );
  return { head, block, blocks, tail, size: head.length + blocks * block.length + tail.length };
}

class ReplyError extends Error {}

/** One client connection: writes, and checks the replies' first digits in order. */
class Connection {
  readonly socket: Socket;
  private expected: number[] = [];
  private partial: Buffer | null = null;
  private waiter: { resolve: () => void; reject: (error: Error) => void } | null = null;
  private failure: Error | null = null;
  private closedOk = false;

  constructor(
    port: number,
    private readonly onReply: () => void,
  ) {
    this.socket = connect({ host: HOST, port });
    this.socket.setNoDelay(true);
    this.socket.on("data", (chunk: Buffer) => this.receive(chunk));
    this.socket.on("error", (error) => this.fail(error));
    this.socket.on("close", () => {
      if (!this.closedOk) this.fail(new Error("the server closed the connection"));
    });
  }

  /** Resolves when every reply expected so far (as first digits, e.g. "223") has arrived. */
  expect(digits: string): Promise<void> {
    for (let i = 0; i < digits.length; i++) this.expected.push(digits.charCodeAt(i));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Writes `bytes` and waits for replies with these first digits. */
  command(bytes: Buffer, digits: string): Promise<void> {
    this.socket.write(bytes);
    return this.expect(digits);
  }

  /** Writes a message (large ones in blocks, with backpressure), its end and `next`, then awaits `digits`. */
  async message(shape: MessageShape, next: Buffer, digits: string, last: Buffer): Promise<void> {
    if (shape.blocks > 0) {
      this.socket.write(shape.head);
      for (let i = 0; i < shape.blocks; i++) {
        if (!this.socket.write(shape.block)) await this.drained();
        if (this.failure) throw this.failure;
      }
      this.socket.write(Buffer.concat([shape.tail, END, next]));
    } else {
      this.socket.write(last);
    }
    return this.expect(digits);
  }

  /** Neither closed by us nor failed (the server closing it counts as a failure). */
  get isOpen(): boolean {
    return !this.closedOk && this.failure === null;
  }

  /** The QUIT was answered: close without treating the server's close as an error. */
  done(): void {
    this.closedOk = true;
    this.socket.destroy();
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const finish = () => {
        this.socket.off("drain", finish);
        this.socket.off("close", finish);
        resolve();
      };
      this.socket.on("drain", finish);
      this.socket.on("close", finish);
    });
  }

  private receive(chunk: Buffer): void {
    let data = chunk;
    if (this.partial) {
      data = Buffer.concat([this.partial, chunk]);
      this.partial = null;
    }
    let start = 0;
    for (;;) {
      const lf = data.indexOf(10, start);
      if (lf === -1) break;
      // "250-..." continues a multi-line reply; "250 ..." (or a bare "250") ends it.
      if (data[start + 3] !== 0x2d) this.reply(data, start, lf);
      start = lf + 1;
    }
    if (start < data.length) this.partial = data.subarray(start);
  }

  private reply(data: Buffer, start: number, end: number): void {
    this.onReply();
    const want = this.expected.shift();
    if (want === undefined || data[start] !== want) {
      const text = data.toString("latin1", start, end).trimEnd();
      const expected = want === undefined ? "no reply" : `${String.fromCharCode(want)}xx`;
      this.fail(new ReplyError(`expected ${expected}, got "${text}"`));
      return;
    }
    if (this.expected.length === 0 && this.waiter) {
      const { resolve } = this.waiter;
      this.waiter = null;
      resolve();
    }
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    if (this.waiter) {
      const { reject } = this.waiter;
      this.waiter = null;
      reject(error);
    }
    this.socket.destroy();
  }
}

/** Sends `load.messages` messages and resolves when every one was answered and every session quit. */
export async function sendMessages(load: MessageLoad): Promise<LoadResult> {
  const shape = messageShape(load.bodyBytes);
  const small = shape.blocks === 0 ? Buffer.concat([shape.head, shape.tail, END]) : EMPTY;
  const smallThenTransaction = Buffer.concat([small, TRANSACTION]);
  const smallThenQuit = Buffer.concat([small, QUIT]);
  let remaining = load.messages;
  let sent = 0;
  let lastReply = performance.now();
  const onReply = () => {
    lastReply = performance.now();
  };
  const claim = () => {
    if (remaining <= 0) return false;
    remaining--;
    return true;
  };

  const connection = async (): Promise<void> => {
    const c = new Connection(load.port, onReply);
    await c.expect("2");
    await c.command(EHLO, "2");
    if (load.pipelining) {
      await c.command(TRANSACTION, "223");
      for (;;) {
        const more = load.perConnection === "many" && claim();
        if (more) await c.message(shape, TRANSACTION, "2223", smallThenTransaction);
        else await c.message(shape, QUIT, "22", smallThenQuit);
        sent++;
        if (!more) break;
      }
    } else {
      for (;;) {
        await c.command(MAIL, "2");
        await c.command(RCPT, "2");
        await c.command(DATA, "3");
        await c.message(shape, EMPTY, "2", small);
        sent++;
        if (!(load.perConnection === "many" && claim())) break;
      }
      await c.command(QUIT, "2");
    }
    c.done();
  };
  const session = async (): Promise<void> => {
    while (claim()) await connection();
  };

  const stallMs = load.stallMs ?? 60_000;
  let watchdog: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    watchdog = setInterval(() => {
      if (performance.now() - lastReply > stallMs) {
        reject(new Error(`no reply for ${stallMs / 1000} s (${sent} of ${load.messages} messages answered)`));
      }
    }, 1000);
  });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    await Promise.race([Promise.all(Array.from({ length: load.sessions }, session)), stalled]);
  } finally {
    clearInterval(watchdog);
  }
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { sent, bytes: sent * shape.size, elapsedMs, cpuMs: (cpu.user + cpu.system) / 1000 };
}

export interface IdleConnections {
  held: number;
  /** How many are still open: the server may have closed some since (a timeout, a limit). */
  stillOpen(): number;
  /** Closes every connection. */
  close(): void;
}

/** Opens `count` connections (at most 256 connecting at once), each waiting for its greeting, and holds them. */
export async function holdIdle(port: number, count: number): Promise<IdleConnections> {
  const connections: Connection[] = [];
  let next = 0;
  const opener = async () => {
    while (next < count) {
      next++;
      const c = new Connection(port, () => {});
      connections.push(c);
      await c.expect("2");
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(256, count) }, opener));
  } catch (error) {
    for (const c of connections) c.done();
    throw error;
  }
  return {
    held: connections.length,
    stillOpen: () => connections.filter((c) => c.isOpen).length,
    close: () => {
      for (const c of connections) c.done();
    },
  };
}

// ---- child-process entry ----

type Request = ({ mode: "messages" } & MessageLoad) | { mode: "idle"; port: number; connections: number };

async function main(): Promise<void> {
  const request = JSON.parse(process.argv[2] ?? "{}") as Request;
  if (request.mode === "messages") {
    await reportToParent({ type: "result", ...(await sendMessages(request)) });
  } else if (request.mode === "idle") {
    const idle = await holdIdle(request.port, request.connections);
    const released = new Promise<void>((resolve) => {
      if (!process.send) {
        setTimeout(resolve, 5000); // standalone: hold for five seconds
        return;
      }
      process.on("message", (message: { type?: string }) => {
        if (message?.type === "release") resolve();
      });
    });
    await reportToParent({ type: "held", held: idle.held });
    await released;
    const stillOpen = idle.stillOpen();
    idle.close();
    await reportToParent({ type: "released", stillOpen });
  } else {
    throw new Error('The request needs "mode": "messages" or "idle".');
  }
}

runIfEntryPoint(import.meta.url, main);
