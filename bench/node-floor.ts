/**
 * `node-floor`: a REFERENCE for the benchmark, not a peer. It is the least work any Node SMTP server can do
 * per command on this machine, so that the report can show how much of a 2 KB scenario's time is loopback
 * round trips and syscalls (which every Node server pays) rather than SMTP handling.
 *
 * What it does, per connection (a `net` socket with noDelay):
 * - greets, then answers each command line by its first four bytes (case-insensitive): EHLO gets a
 *   two-line 250 advertising PIPELINING, DATA 354, QUIT 221 and the end of the connection, anything else
 *   (HELO, MAIL, RCPT, RSET, NOOP...) 250;
 * - after DATA, finds the end of the message, `\r\n.\r\n`, with Buffer.indexOf, also when the marker is
 *   split across chunks (it keeps the message's last four bytes) and when the message is empty (the DATA
 *   line's CRLF starts the marker), then answers 250 and reports the message's size;
 * - writes the replies to all the commands and messages of one chunk with one `socket.write` (pipelined
 *   commands, and a message arriving in the same chunk as its DATA line, are handled in order).
 *
 * What it does not do: check the command sequence or syntax (DATA before MAIL is accepted), keep the
 * envelope or the message, undo dot-stuffing (the size it reports is the bytes between DATA's line and
 * the final dot, as received), limit line or message lengths, time sessions out, or offer any extension
 * beyond the word PIPELINING. It is only fit for the benchmark's own generators (smtp-source and
 * bench/load.ts), which it answers correctly.
 */
import { createServer, type Server, type Socket } from "node:net";
import { Readable } from "node:stream";

/** Called once per message with its size in bytes (see the header). */
export type OnMessage = (bytes: number) => void;

/**
 * `node-floor-stream`: drains a message handed over as a Readable; the 250 waits for its promise. The
 * Readable gets the bytes as they arrive (any part of the end-of-data marker that ended an earlier chunk
 * included), in the chunks they arrived in.
 */
export type ConsumeMessage = (message: Readable) => Promise<void>;

const LF = 0x0a;
const END_OF_DATA = Buffer.from("\r\n.\r\n");
/** Bytes of a marker that can end a chunk without the marker being complete. */
const SEAM = END_OF_DATA.length - 1;
/** What precedes a message's first byte: the CRLF ending the DATA line. */
const DATA_LINE_END = Buffer.from("\r\n");
/** The DOT and CRLF that end the marker and are not part of the message. */
const DOT_LINE = 3;
const EMPTY = Buffer.alloc(0);

/** A command's first four bytes, as a big-endian integer with the letters' case bit set (lowercase). */
const LOWERCASE = 0x20202020;
const verbOf = (word: string) => Buffer.from(word).readUInt32BE(0);
const EHLO = verbOf("ehlo");
const DATA = verbOf("data");
const QUIT = verbOf("quit");

const GREETING = "220 node-floor ESMTP\r\n";
const EHLO_REPLY = "250-node-floor\r\n250 PIPELINING\r\n";
const OK_REPLY = "250 2.0.0 Ok\r\n";
const DATA_REPLY = "354 End data with <CR><LF>.<CR><LF>\r\n";
const QUEUED_REPLY = "250 2.0.0 Ok: queued\r\n";
const QUIT_REPLY = "221 2.0.0 Bye\r\n";

/**
 * A server that answers every connection as described in the header; it does not listen yet. With
 * `consume`, each message is also handed to it as a Readable, and its 250 waits for the promise
 * (`node-floor-stream`: the least a Node server that streams messages to a consumer can do).
 */
export function createNodeFloor(onMessage: OnMessage, consume?: ConsumeMessage): Server {
  return createServer({ noDelay: true }, (socket) => new FloorSession(socket, onMessage, consume));
}

/**
 * Where the end-of-data marker ends (the index just past it) in `chunk` from `at`, given `tail`, the last
 * bytes (at most SEAM) received before `chunk`; -1 if it is not there.
 */
function endOfData(tail: Buffer, chunk: Buffer, at: number): number {
  if (tail.length > 0) {
    const seam = Buffer.concat([tail, chunk.subarray(at, at + SEAM)]);
    const start = seam.indexOf(END_OF_DATA);
    if (start >= 0) return at + start + END_OF_DATA.length - tail.length;
  }
  const start = chunk.indexOf(END_OF_DATA, at);
  return start < 0 ? -1 : start + END_OF_DATA.length;
}

/** The last SEAM bytes of `tail` followed by `rest`, copied (so that no chunk is kept alive). */
function lastBytes(tail: Buffer, rest: Buffer): Buffer {
  const joined = rest.length >= SEAM ? rest : Buffer.concat([tail, rest]);
  return Buffer.from(joined.subarray(Math.max(0, joined.length - SEAM)));
}

class FloorSession {
  private inData = false;
  private closing = false;
  /** Command mode: the start of a line whose end has not arrived yet. */
  private line: Buffer = EMPTY;
  /** Data mode: the last bytes received (at most SEAM), for a marker split across chunks. */
  private tail: Buffer = EMPTY;
  /** Data mode: the message's bytes received in earlier chunks. */
  private received = 0;
  /** With a consumer, data mode: the message's Readable. */
  private stream: Readable | null = null;
  /** With a consumer: its promise for the message under way, from DATA until it settles. */
  private handing: Promise<void> | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly onMessage: OnMessage,
    private readonly consume?: ConsumeMessage,
  ) {
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("error", () => {}); // a client that resets: the socket closes, nothing to clean up
    socket.write(GREETING);
  }

  /** Handles every command and message end in `chunk`, then writes their replies at once. */
  private receive(chunk: Buffer): void {
    if (this.closing) return;
    const buffer = this.line.length > 0 ? Buffer.concat([this.line, chunk]) : chunk;
    this.line = EMPTY;
    // While a consumer finishes a message, what follows waits (the generators send nothing meanwhile).
    if (this.handing && !this.inData) this.line = buffer;
    else this.handle(buffer, "");
  }

  /** Handles `buffer` after the replies `before`, until it ends or a message waits for its consumer. */
  private handle(buffer: Buffer, before: string): void {
    let replies = before;
    let at = 0;
    while (at < buffer.length && !this.closing) {
      if (this.inData) {
        const end = this.message(buffer, at);
        if (end < 0) break;
        at = end;
        if (this.handing) {
          this.resumeAfter(this.handing, buffer.subarray(at), replies);
          return;
        }
        replies += QUEUED_REPLY;
      } else {
        const end = buffer.indexOf(LF, at) + 1;
        if (end === 0) {
          this.line = buffer.subarray(at);
          break;
        }
        replies += this.command(buffer, at, end);
        at = end;
      }
    }
    if (this.closing) this.socket.end(replies);
    else if (replies !== "") this.socket.write(replies);
  }

  /** Once the consumer's promise settles: the 250 after `replies`, then the input that followed. */
  private resumeAfter(consumed: Promise<void>, rest: Buffer, replies: string): void {
    consumed.then(
      () => {
        this.handing = null;
        const waiting = this.line;
        this.line = EMPTY;
        this.handle(waiting.length > 0 ? Buffer.concat([rest, waiting]) : rest, replies + QUEUED_REPLY);
      },
      () => this.socket.destroy(),
    );
  }

  /**
   * Consumes message bytes from `at`: returns the index past the end-of-data marker once it is there
   * (the message is counted and command mode resumes), else -1 (every byte from `at` was message).
   */
  private message(buffer: Buffer, at: number): number {
    const end = endOfData(this.tail, buffer, at);
    if (end < 0) {
      this.received += buffer.length - at;
      this.tail = lastBytes(this.tail, buffer.subarray(at));
      this.stream?.push(buffer.subarray(at));
      return -1;
    }
    this.onMessage(this.received + end - at - DOT_LINE);
    this.inData = false;
    this.received = 0;
    this.tail = EMPTY;
    const { stream } = this;
    if (stream) {
      if (end - DOT_LINE > at) stream.push(buffer.subarray(at, end - DOT_LINE));
      stream.push(null);
      this.stream = null;
    }
    return end;
  }

  /** The reply to the command line from `start` to `end` (past its LF); DATA and QUIT change the state. */
  private command(buffer: Buffer, start: number, end: number): string {
    const verb = end - start >= 4 ? buffer.readUInt32BE(start) | LOWERCASE : 0;
    switch (verb) {
      case DATA:
        this.inData = true;
        this.tail = DATA_LINE_END;
        if (this.consume) {
          const stream = new Readable({ read() {} });
          this.stream = stream;
          this.handing = this.consume(stream);
        }
        return DATA_REPLY;
      case QUIT:
        this.closing = true;
        return QUIT_REPLY;
      case EHLO:
        return EHLO_REPLY;
      default:
        return OK_REPLY;
    }
  }
}
