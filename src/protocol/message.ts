/**
 * Receiving one message, whichever way its bytes arrive (DATA or BDAT): the size limit, the buffer or
 * the stream handed to onMessageStream (with backpressure), the data hooks, and the outcome that decides
 * the reply. The session feeds it decoded bytes and asks for the outcome at the end.
 */
import { Readable } from "node:stream";
import type { SessionContext } from "./context.js";
import { SmtpError } from "./errors.js";
import type { MessageHooks } from "./hooks.js";
import { type Awaitable, thenCall } from "./maybe-async.js";
import { type MessageResult, messageResult } from "./message-outcome.js";

export interface MessageLimits {
  /** Largest message in bytes, 0 for no limit. */
  maxMessageSize: number;
  /** highWaterMark of the stream given to onMessageStream. */
  streamHighWaterMark: number;
  /**
   * With onMessageStream: bytes kept before the stream is opened; a message that ends within them goes to
   * onMessageData whole, never to onMessageStream (0: the stream is opened at the start).
   */
  bufferUpTo: number;
}

type StreamConsumer = NonNullable<MessageHooks["onMessageStream"]>;

const EMPTY = Buffer.alloc(0);

/** Pieces of a kept message smaller than this are copied together into buffers of GATHER_SIZE bytes. */
const GATHER_BELOW = 1024;
const GATHER_SIZE = 4096;

export class MessageReceiver {
  /** The first reason the message will be refused; once set, bytes are counted and dropped. */
  error: unknown = null;
  /** While the stream consumer wants no more bytes: settles when it reads again or the message fails. */
  private full: { promise: Promise<void>; resolve: () => void } | null = null;
  private parts: Buffer[] = [];
  /** The bytes in `parts`, while they are kept (no stream). */
  private partsBytes = 0;
  /**
   * Where small pieces of a kept message are copied together (see keep()), and how much of it is used;
   * its view is the last of `parts` while it is in use.
   */
  private gather: Buffer | null = null;
  private gathered = 0;
  /** The stream consumer, while the message is within bufferUpTo: it is started once the message passes it. */
  private waitingConsumer: StreamConsumer | null = null;
  /** The last bytes added, not handed over yet: the next chunk may continue them (see append()). */
  private held: Buffer | null = null;
  private stream: Readable | null = null;
  private streamResult: Promise<unknown> | null = null;
  private streamFailure: unknown = null;
  private finished = false;
  /** The session gave the message up, perhaps after its last byte (a timeout while the stream consumer ran). */
  private abandoned = false;

  constructor(
    private readonly ctx: SessionContext,
    private readonly hooks: MessageHooks,
    private readonly limits: MessageLimits,
  ) {
    const message = ctx.message;
    message.received = new Date();
    message.delivered = null;
    message.bytesize = 0;
    message.headers = false;
    message.data = EMPTY;
  }

  /**
   * Runs the data-start hook (its error refuses the message before any data) and opens the stream (with
   * bufferUpTo, once the message passes it), unless the message was abandoned while the hook ran (the
   * session closed): no consumer is started for it.
   */
  begin(): Awaitable<void> {
    return thenCall(
      () => this.hooks.onMessageDataStart(this.ctx),
      () => {
        const consumer = this.hooks.onMessageStream;
        if (!consumer || this.error) return;
        if (this.limits.bufferUpTo > 0) this.waitingConsumer = consumer;
        else this.openStream(consumer);
      },
    );
  }

  /** Appends message bytes the client sent (decoded): they make bytesize and meet the size limit. */
  write(chunk: Buffer): void {
    const message = this.ctx.message;
    message.bytesize += chunk.length;
    if (this.error) return;
    const { maxMessageSize } = this.limits;
    if (maxMessageSize > 0 && message.bytesize > maxMessageSize) {
      this.fail(new SmtpError(552, "Error: message exceeds fixed maximum message size", "5.3.4"));
      return;
    }
    this.append(chunk);
  }

  /**
   * Inserts bytes a hook wrote (ctx.message.write, a Received header say). They are the server's, not
   * the client's: RFC 1870 sizes what the client sends, so they count toward neither bytesize nor the limit.
   */
  insert(bytes: Buffer | string): void {
    if (this.error) return;
    this.append(typeof bytes === "string" ? Buffer.from(bytes) : bytes);
  }

  /**
   * Adds bytes after those already added. A chunk that continues the last one in the same memory (the
   * decoder splits a clean message only where the headers end) widens it instead, so that a message that
   * arrived in one read reaches the buffer or the stream in one piece, without a copy. The last run is
   * held back until something else follows it or flush() is called.
   */
  private append(chunk: Buffer): void {
    const held = this.held;
    if (held && held.buffer === chunk.buffer && held.byteOffset + held.length === chunk.byteOffset) {
      this.held = Buffer.from(held.buffer, held.byteOffset, held.length + chunk.length);
      return;
    }
    this.flush();
    this.held = chunk;
  }

  /**
   * Keeps a piece of a message not streamed (yet). The first piece is kept as it is (a message that
   * arrived in one read stays one view of it, no copy); a later small one is copied into a shared
   * GATHER_SIZE buffer. Each socket read is a Buffer of its own, so a client sending one byte per TCP
   * segment made each byte cost a Buffer object and its backing store: ~360 times the message in memory.
   */
  private keep(bytes: Buffer): void {
    this.partsBytes += bytes.length;
    if (bytes.length >= GATHER_BELOW || this.parts.length === 0) {
      this.parts.push(bytes);
      this.gather = null;
      return;
    }
    const gather = this.gather;
    if (gather && this.gathered + bytes.length <= gather.length) {
      bytes.copy(gather, this.gathered);
      this.gathered += bytes.length;
      this.parts[this.parts.length - 1] = gather.subarray(0, this.gathered);
      return;
    }
    this.gather = Buffer.allocUnsafe(GATHER_SIZE);
    bytes.copy(this.gather);
    this.gathered = bytes.length;
    this.parts.push(this.gather.subarray(0, this.gathered));
  }

  /**
   * Hands the bytes held back to the stream (or the buffer): the session calls it when it stops reading
   * the message for now, so that a stream consumer is never kept waiting for bytes that arrived.
   */
  flush(): void {
    const held = this.held;
    if (!held) return;
    this.held = null;
    if (this.error) return;
    const { stream } = this;
    if (!stream) {
      this.keep(held);
      const consumer = this.waitingConsumer;
      if (consumer && this.partsBytes > this.limits.bufferUpTo) {
        // Too big to be handed over whole: from now on it is streamed, what was kept first.
        this.waitingConsumer = null;
        this.openStream(consumer);
      }
      return;
    }
    if (this.streamFailure || stream.destroyed) return;
    if (!stream.push(held) && !this.full) {
      let resolve = () => {};
      const promise = new Promise<void>((settle) => {
        resolve = settle;
      });
      this.full = { promise, resolve };
    }
  }

  /** The message will be refused: drop what was kept and tell the stream consumer. */
  fail(error: unknown): void {
    if (this.error || this.finished) return;
    this.error = error;
    this.parts = [];
    this.partsBytes = 0;
    this.gather = null;
    this.waitingConsumer = null;
    this.held = null;
    if (this.stream && !this.stream.destroyed) {
      this.stream.destroy(error instanceof Error ? error : new Error(String(error)));
    }
    this.release();
  }

  /**
   * Null while the message takes more bytes; while the stream consumer wants no more, a promise that
   * settles when it reads again (or the message fails): the session reads no input meanwhile.
   */
  get backpressure(): Promise<void> | null {
    return this.full?.promise ?? null;
  }

  private release(): void {
    const full = this.full;
    this.full = null;
    full?.resolve();
  }

  /** The session ends before the message does (client gone, RSET, shutdown). */
  abandon(reason: unknown): void {
    this.abandoned = true;
    this.fail(reason);
    this.streamResult?.catch(() => {});
  }

  /**
   * Runs a hook while data arrives. Its error refuses the message (answered at the end); a 421 is
   * returned so the session can answer and close at once.
   */
  runHook(hook: (ctx: SessionContext) => Awaitable<unknown>): Awaitable<SmtpError | null> {
    if (this.error) return null;
    return thenCall(
      () => hook.call(this.hooks, this.ctx),
      () => null,
      (error) => {
        this.fail(error);
        return error instanceof SmtpError && error.closesConnection ? error : null;
      },
    );
  }

  receiving(): Awaitable<SmtpError | null> {
    return this.runHook(this.hooks.onMessageDataReceiving);
  }

  headersEnded(): Awaitable<SmtpError | null> {
    this.ctx.message.headers = true;
    return this.runHook(this.hooks.onMessageDataHeaders);
  }

  /** The last byte arrived: completes the stream or the buffer and runs onMessageData. */
  finish(): Awaitable<MessageResult> {
    this.finished = true;
    this.flush();
    const message = this.ctx.message;
    message.delivered = new Date();
    if (this.stream) return this.finishStream(this.stream);
    if (this.error) return messageResult(this.error, undefined);
    this.waitingConsumer = null; // it ended within bufferUpTo: onMessageData gets it whole
    message.data = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts);
    return this.runDataHook(undefined);
  }

  /** True once finish() was called: abandoning the message no longer changes anything. */
  get isFinished(): boolean {
    return this.finished;
  }

  private async finishStream(stream: Readable): Promise<MessageResult> {
    if (this.error) {
      await this.streamResult; // let the consumer clean up before the client hears the refusal
      return messageResult(this.error, undefined);
    }
    stream.push(null);
    const value = await this.streamResult;
    if (this.streamFailure) return messageResult(this.streamFailure, value);
    // The session closed while the consumer finished (its reply went out already): no hook starts for it.
    if (this.abandoned) {
      return messageResult(new SmtpError(421, "Session closed before the message was handed over"), value);
    }
    return this.runDataHook(value);
  }

  /** onMessageData; what it returns (other than nothing) replaces `value`, what it throws refuses. */
  private runDataHook(value: unknown): Awaitable<MessageResult> {
    return thenCall(
      () => this.hooks.onMessageData(this.ctx),
      (returned) => messageResult(null, returned ?? value),
      (error) => messageResult(error, value),
    );
  }

  private openStream(consumer: StreamConsumer): void {
    const stream = new Readable({
      highWaterMark: this.limits.streamHighWaterMark,
      read: () => this.release(),
    });
    this.stream = stream;
    // The consumer learns of a failure when it reads; one that has not started reading yet (a store
    // still opening its file) must not turn the error into an uncaught exception.
    stream.on("error", () => {});
    for (const bytes of this.parts) stream.push(bytes); // what the data-start hook wrote comes first
    this.parts = [];
    this.partsBytes = 0;
    this.gather = null;
    this.flush();
    // The consumer starts a turn later; a message abandoned meanwhile (the session closed) never starts it.
    this.streamResult = Promise.resolve()
      .then(() => (this.error ? undefined : consumer(this.ctx, stream)))
      .then(
        (value) => {
          // A consumer that returns before the end no longer reads: drain the rest so the session goes on.
          if (!stream.readableEnded && !stream.destroyed) stream.resume();
          return value;
        },
        (error) => {
          // The consumer failed (a store error...): read the message to its end, then answer the error.
          this.streamFailure = error ?? new Error("message stream hook failed");
          if (!stream.destroyed) stream.destroy();
          this.release();
        },
      );
  }
}
