/**
 * One message's intake, without a session (src/protocol/message.ts): the size limit, the server's own
 * inserted bytes, the buffer given to onMessageData, and the stream given to onMessageStream with its
 * backpressure, early return, failure and a session that closes while the consumer finishes.
 */
import assert from "node:assert/strict";
import type { Readable } from "node:stream";
import { describe, test } from "node:test";
import { SmtpError } from "../../src/protocol/errors.js";
import type { MessageHooks } from "../../src/protocol/hooks.js";
import { MessageReceiver } from "../../src/protocol/message.js";
import { newContext } from "../helpers/session-harness.js";

function hooks(overrides: Partial<MessageHooks> = {}): MessageHooks {
  const none = () => {};
  return {
    onMessageDataStart: none,
    onMessageDataReceiving: none,
    onMessageDataHeaders: none,
    onMessageData: none,
    ...overrides,
  };
}

function receiver(
  overrides: Partial<MessageHooks> = {},
  maxMessageSize = 10,
  streamHighWaterMark = 16_384,
  bufferUpTo = 0,
) {
  const ctx = newContext();
  return {
    ctx,
    message: new MessageReceiver(ctx, hooks(overrides), { maxMessageSize, streamHighWaterMark, bufferUpTo }),
  };
}

const bytes = (text: string) => Buffer.from(text, "latin1");
const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("buffered (onMessageData)", () => {
  test("the limit: exactly maxMessageSize octets are accepted, one more refuses with 552 5.3.4", async () => {
    const { ctx, message } = receiver();
    await message.begin();
    message.write(bytes("12345"));
    message.write(bytes("67890"));
    assert.equal(message.error, null);
    message.write(bytes("x"));
    assert.ok((message.error as unknown) instanceof SmtpError);
    assert.equal(
      (message.error as unknown as SmtpError).render(),
      "552 5.3.4 Error: message exceeds fixed maximum message size\r\n",
    );
    message.write(bytes("more"));
    assert.equal(ctx.message.bytesize, 15, "bytes are still counted after the refusal");
    const result = await message.finish();
    assert.equal(result.kind, "refused");
    assert.equal(ctx.message.data.length, 0, "nothing is kept of a refused message");
  });

  test("a limit of 0 is none", async () => {
    const { ctx, message } = receiver({}, 0);
    await message.begin();
    message.write(Buffer.alloc(100_000));
    assert.equal(message.error, null);
    await message.finish();
    assert.equal(ctx.message.data.length, 100_000);
  });

  test("the server's inserted bytes are in the message but count neither in bytesize nor toward the limit", async () => {
    const { ctx, message } = receiver();
    await message.begin();
    message.insert("Received: by mx\r\n");
    message.insert(bytes("X: 1\r\n"));
    message.write(bytes("0123456789"));
    assert.equal(message.error, null);
    assert.equal(ctx.message.bytesize, 10);
    await message.finish();
    assert.equal(ctx.message.data.toString("latin1"), "Received: by mx\r\nX: 1\r\n0123456789");
  });

  test("received and delivered are stamped; headers starts false; the hook's value is the result", async () => {
    const { ctx, message } = receiver({ onMessageData: () => "queued as 9" });
    ctx.message.headers = true;
    const fresh = new MessageReceiver(ctx, hooks({ onMessageData: () => "queued as 9" }), {
      maxMessageSize: 0,
      streamHighWaterMark: 16_384,
      bufferUpTo: 0,
    });
    assert.equal(ctx.message.headers, false);
    assert.ok(ctx.message.received instanceof Date);
    assert.equal(ctx.message.delivered, null);
    await fresh.begin();
    fresh.write(bytes("one part"));
    assert.equal(fresh.isFinished, false);
    assert.deepEqual(await fresh.finish(), { kind: "accepted", text: "queued as 9" });
    assert.equal(fresh.isFinished, true);
    assert.ok((ctx.message.delivered as unknown) instanceof Date);
    assert.equal(ctx.message.data.toString(), "one part");
    assert.ok(message);
  });

  test("a data hook's error refuses the message; a 421 from it is returned so the session can close", async () => {
    const { message } = receiver({
      onMessageDataReceiving: () => {
        throw new SmtpError(421, "go", "4.3.0");
      },
    });
    await message.begin();
    message.write(bytes("x"));
    const closing = await message.receiving();
    assert.ok(closing instanceof SmtpError && closing.code === 421);
    assert.equal(await message.receiving(), null, "hooks no longer run once the message failed");
    const refusing = receiver({
      onMessageDataHeaders: () => {
        throw new SmtpError(550, "no", "5.7.1");
      },
    }).message;
    await refusing.begin();
    assert.equal(await refusing.headersEnded(), null, "a refusal that does not close is answered at the end");
    assert.equal((refusing.error as SmtpError).code, 550);
  });
  test("runs of one read are joined without a copy; bytes from elsewhere keep their place", async () => {
    const { ctx, message } = receiver({}, 0);
    await message.begin();
    const read = bytes("Subject: a\r\n\r\nbody\r\n");
    message.write(read.subarray(0, 12)); // the decoder stops where the headers end...
    message.write(read.subarray(12)); // ...and goes on from there, in the same memory
    assert.equal((await message.finish()).kind, "accepted");
    assert.equal(ctx.message.data.toString("latin1"), "Subject: a\r\n\r\nbody\r\n");
    assert.equal(ctx.message.data.buffer, read.buffer, "a view of the input, not a copy");

    const split = receiver({}, 0);
    await split.message.begin();
    split.message.write(read.subarray(0, 10));
    split.message.insert("X-Added: 1\r\n"); // a hook's header between two runs of the same read
    split.message.write(read.subarray(10));
    await split.message.finish();
    assert.equal(split.ctx.message.data.toString("latin1"), "Subject: aX-Added: 1\r\n\r\n\r\nbody\r\n");
  });
});

describe("streamed (onMessageStream)", () => {
  test("the consumer reads what was written, in order, inserted bytes included; its value goes to onMessageData", async () => {
    let seen = "";
    const { message } = receiver({
      onMessageStream: async (_ctx, stream: Readable) => {
        for await (const chunk of stream) seen += chunk.toString();
        return "from the stream";
      },
    });
    message.insert("H: 1\r\n"); // before begin(): what a data-start hook wrote comes first
    await message.begin();
    message.write(bytes("abc"));
    message.write(bytes("def"));
    assert.deepEqual(await message.finish(), { kind: "accepted", text: "from the stream" });
    assert.equal(seen, "H: 1\r\nabcdef");
  });

  test("runs of one read reach the consumer as one chunk; an inserted header is a chunk of its own, in place", async () => {
    const chunks: string[] = [];
    const { message } = receiver(
      {
        onMessageStream: async (_ctx, stream: Readable) => {
          stream.on("data", (chunk: Buffer) => chunks.push(chunk.toString("latin1")));
          await new Promise((resolve) => stream.on("end", resolve));
        },
      },
      0,
    );
    await message.begin();
    await turn();
    const read = bytes("A: 1\r\n\r\nbody\r\n");
    message.write(read.subarray(0, 6));
    message.write(read.subarray(6));
    message.flush();
    await turn();
    assert.deepEqual(chunks, ["A: 1\r\n\r\nbody\r\n"]);
    const next = bytes("more\r\nend\r\n");
    message.write(next.subarray(0, 6));
    message.insert("X: 2\r\n");
    message.write(next.subarray(6));
    await message.finish();
    assert.deepEqual(chunks, ["A: 1\r\n\r\nbody\r\n", "more\r\n", "X: 2\r\n", "end\r\n"]);
  });

  test("backpressure: while the consumer reads nothing past its highWaterMark, the session is told to wait (once the bytes are flushed to it)", async () => {
    let stream: Readable | undefined;
    const { message } = receiver(
      {
        onMessageStream: (_ctx, given) => {
          stream = given;
          return new Promise(() => {});
        },
      },
      0,
      4,
    );
    await message.begin();
    assert.equal(message.backpressure, null);
    message.write(bytes("12345678"));
    assert.equal(message.backpressure, null, "written bytes are held until the session flushes them");
    message.flush();
    const waiting = message.backpressure;
    assert.ok((waiting as unknown) instanceof Promise);
    message.write(bytes("9"));
    message.flush();
    assert.equal(message.backpressure, waiting, "one wait, however many writes");
    await turn();
    stream?.read();
    await waiting;
    assert.equal(message.backpressure, null);
  });

  test("a consumer that returns before the end: the rest is drained and the message accepted", async () => {
    const { message } = receiver({ onMessageStream: async () => "early" }, 0, 4);
    await message.begin();
    await turn();
    for (let i = 0; i < 10; i++) {
      message.write(bytes("0123456789"));
      message.flush();
      await (message.backpressure ?? undefined);
    }
    assert.deepEqual(await message.finish(), { kind: "accepted", text: "early" });
  });

  test("a consumer that fails: the message is read to its end, then refused with its error", async () => {
    const failure = new SmtpError(451, "store down", "4.3.0");
    const { message } = receiver({
      onMessageStream: async () => {
        throw failure;
      },
    });
    await message.begin();
    await turn();
    message.write(bytes("x"));
    assert.deepEqual(await message.finish(), { kind: "refused", error: failure });
    const silent = receiver({ onMessageStream: () => Promise.reject(undefined) }).message;
    await silent.begin();
    await turn();
    const result = await silent.finish();
    assert.equal(result.kind, "refused");
    assert.equal(result.kind === "refused" && (result.error as Error).message, "message stream hook failed");
  });

  test("a message refused while streaming: the consumer's stream errors, and the refusal is the answer", async () => {
    let streamError: unknown;
    const { message } = receiver(
      {
        onMessageStream: async (_ctx, stream) => {
          try {
            for await (const _ of stream);
          } catch (error) {
            streamError = error;
          }
        },
      },
      3,
    );
    await message.begin();
    message.write(bytes("1234"));
    const result = await message.finish();
    assert.equal(result.kind, "refused");
    assert.equal(result.kind === "refused" && (result.error as SmtpError).code, 552);
    assert.ok(streamError instanceof SmtpError && streamError.code === 552);
  });

  test("the session closes while the consumer finishes: no onMessageData, a 421 as the result", async () => {
    let finishConsumer = () => {};
    let dataHookRan = false;
    const { message } = receiver({
      onMessageStream: async (_ctx, stream) => {
        for await (const _ of stream);
        await new Promise<void>((resolve) => {
          finishConsumer = resolve;
        });
      },
      onMessageData: () => {
        dataHookRan = true;
      },
    });
    await message.begin();
    message.write(bytes("x"));
    const finishing = message.finish();
    await turn();
    message.abandon(new Error("client gone"));
    finishConsumer();
    const result = await finishing;
    assert.equal(result.kind, "refused");
    assert.equal(
      result.kind === "refused" && (result.error as SmtpError).render(),
      "421 4.3.2 Session closed before the message was handed over\r\n",
    );
    assert.equal(dataHookRan, false);
  });

  test("a message abandoned before its consumer started never starts it", async () => {
    let started = false;
    const { message } = receiver({
      onMessageStream: async () => {
        started = true;
      },
    });
    void message.begin(); // the data-start hook answered at once: the consumer starts a microtask later
    message.abandon(new Error("gone"));
    await turn();
    assert.equal(started, false);
  });
});

describe("bufferUpTo: small messages are not streamed", () => {
  const streaming = (seen: { chunks: string[]; streams: number }) => ({
    onMessageStream: async (_ctx: unknown, stream: Readable) => {
      seen.streams += 1;
      for await (const chunk of stream) seen.chunks.push((chunk as Buffer).toString("latin1"));
      return "streamed";
    },
    onMessageData: (ctx: { message: { data: Buffer } }) =>
      ctx.message.data.length > 0 ? `whole: ${ctx.message.data.toString("latin1")}` : undefined,
  });

  test("a message that ends within the bound never reaches onMessageStream: onMessageData gets it whole", async () => {
    const seen = { chunks: [] as string[], streams: 0 };
    const { ctx, message } = receiver(streaming(seen), 0, 16_384, 12);
    message.insert("H: 1\r\n");
    await message.begin();
    message.write(bytes("abc"));
    message.flush();
    message.write(bytes("def"));
    assert.deepEqual(await message.finish(), { kind: "accepted", text: "whole: H: 1\r\nabcdef" });
    assert.equal(seen.streams, 0);
    assert.equal(ctx.message.data.toString("latin1"), "H: 1\r\nabcdef");
  });

  test("one byte past the bound: the stream opens with everything kept so far, in order, then the rest", async () => {
    const seen = { chunks: [] as string[], streams: 0 };
    const { ctx, message } = receiver(streaming(seen), 0, 16_384, 12);
    message.insert("H: 1\r\n");
    await message.begin();
    message.write(bytes("abcdef"));
    message.flush(); // 12 bytes kept: still within
    await turn();
    assert.equal(seen.streams, 0);
    message.write(bytes("g"));
    message.flush(); // 13: streamed from now on
    message.write(bytes("hij"));
    assert.deepEqual(await message.finish(), { kind: "accepted", text: "streamed" });
    assert.equal(seen.streams, 1);
    assert.equal(seen.chunks.join(""), "H: 1\r\nabcdefghij");
    assert.equal(ctx.message.data.length, 0, "a streamed message is not also buffered");
  });

  test("a message kept in one-byte reads is kept in a few buffers, not one per read (tiny TCP segments)", async () => {
    const seen = { chunks: [] as string[], streams: 0 };
    // 'data' listeners get each piece the stream was given, as it was given (for-await would join them).
    const pieces = {
      onMessageStream: (_ctx: unknown, stream: Readable) =>
        new Promise<string>((resolve, reject) => {
          seen.streams += 1;
          stream.on("data", (chunk: Buffer) => seen.chunks.push(chunk.toString("latin1")));
          stream.on("error", reject);
          stream.on("end", () => resolve("streamed"));
        }),
    };
    const { message } = receiver(pieces, 0, 1 << 20, 65_536);
    await message.begin();
    for (let i = 0; i < 20_000; i++) {
      message.write(Buffer.from([0x61 + (i % 26)])); // each read a Buffer of its own
      message.flush();
    }
    message.write(Buffer.alloc(50_000, "z")); // past the bound: streamed, what was kept first
    message.flush();
    assert.deepEqual(await message.finish(), { kind: "accepted", text: "streamed" });
    const kept = seen.chunks.join("").slice(0, 20_000);
    assert.equal(
      kept,
      Array.from({ length: 20_000 }, (_, i) => String.fromCharCode(0x61 + (i % 26))).join(""),
    );
    // Before: 20,000 one-byte pieces (each a Buffer and its own backing store, ~360x the bytes in memory).
    assert.ok(seen.chunks.length <= 8, `${seen.chunks.length} chunks`);
  });

  test("a small message refused before its end reaches neither hook", async () => {
    const seen = { chunks: [] as string[], streams: 0 };
    let dataHook = false;
    const { message } = receiver(
      {
        ...streaming(seen),
        onMessageData: () => {
          dataHook = true;
        },
      },
      4,
      16_384,
      64,
    );
    await message.begin();
    message.write(bytes("too long"));
    const result = await message.finish();
    assert.equal(result.kind, "refused");
    assert.equal(seen.streams, 0);
    assert.equal(dataHook, false);
  });
});
