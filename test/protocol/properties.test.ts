/**
 * Property-based tests (fast-check) of the DATA decoder and of the session: dot-stuffing round trips,
 * chunking never changes a result, and no input makes the session throw or write a malformed reply.
 * Runs are bounded so the whole file takes a few seconds; a failure prints the seed and the shrunk
 * counterexample, which fc.assert(..., { seed, path }) replays.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { BodyStop } from "../../src/protocol/body-reader.js";
import { CRLF_MODES, type CrlfMode, DataDecoder } from "../../src/protocol/data.js";
import { SmtpError } from "../../src/protocol/errors.js";
import type { SessionHooks } from "../../src/protocol/hooks.js";
import type { SessionConfig, SmtpSession } from "../../src/protocol/session.js";
import { openSession } from "../helpers/session-harness.js";

const CR = 13;
const LF = 10;
const DOT = 46;
const bytes = (text: string): Buffer => Buffer.from(text, "latin1");

// ---------------------------------------------------------------------------------------------------
// Decoder helpers

interface Decoded {
  output: Buffer;
  /** Absolute position just after <CRLF>.<CRLF>, or null. */
  end: number | null;
  /** Absolute position where decoding stopped (the end, or the start of the undecided tail). */
  pos: number;
  headersEnd: { at: number; outputLength: number }[];
  bareLineBreaks: number;
}

/** Feeds chunks as the session does: the unconsumed tail is concatenated with the next chunk. */
function decodeChunks(mode: CrlfMode, chunks: readonly Buffer[]): Decoded {
  const emitted: Buffer[] = [];
  let outputLength = 0;
  const decoder = new DataDecoder(mode, (chunk) => {
    emitted.push(chunk);
    outputLength += chunk.length;
  });
  const headersEnd: Decoded["headersEnd"] = [];
  const result = (end: number | null, pos: number): Decoded => ({
    output: Buffer.concat(emitted),
    end,
    pos,
    headersEnd,
    bareLineBreaks: decoder.bareLineBreaks,
  });
  let tail: Buffer = Buffer.alloc(0);
  let base = 0;
  for (const chunk of chunks) {
    const input = tail.length === 0 ? chunk : Buffer.concat([tail, chunk]);
    let pos = 0;
    for (;;) {
      pos = decoder.read(input, pos);
      if (decoder.stop === BodyStop.HeadersEnd) {
        headersEnd.push({ at: base + pos, outputLength });
        assert.ok(headersEnd.length <= 1, "HeadersEnd fires at most once");
        continue;
      }
      if (decoder.stop === BodyStop.End) return result(base + pos, base + pos);
      break;
    }
    assert.ok(input.length - pos <= 2, "NeedMore leaves at most 2 bytes");
    tail = input.subarray(pos);
    base += pos;
  }
  return result(null, base);
}

/**
 * An independent, byte-at-a-time statement of the decoder's rules (see the header of data.ts), used
 * as an oracle. It sees the whole input at once; where the answer depends on bytes not yet received
 * it stops as the streaming decoder must (a "." at a line start needs 2 more bytes, a CR needs 1).
 */
function referenceDecode(input: Buffer, mode: CrlfMode): Decoded {
  const out: number[] = [];
  const headersEnd: Decoded["headersEnd"] = [];
  let bare = 0;
  let lineStart = true; // after a real CRLF, or at the start of the data (the DATA line's CRLF)
  let lineOutput = 0; // out.length where the current line of the output began
  let inHeaders = true;
  const n = input.length;
  const done = (end: number | null, pos: number): Decoded => ({
    output: Buffer.from(out),
    end,
    pos,
    headersEnd,
    bareLineBreaks: bare,
  });
  /** A line end of the output at input position i: the first one ending an empty line ends the headers. */
  const lineEnd = (i: number) => {
    if (inHeaders && out.length === lineOutput) {
      inHeaders = false;
      headersEnd.push({ at: i, outputLength: out.length });
    }
  };
  let i = 0;
  while (i < n) {
    const c = input[i] as number;
    if (lineStart) {
      lineStart = false;
      if (c === DOT) {
        if (i + 2 >= n) return done(null, i);
        if (input[i + 1] === CR && input[i + 2] === LF) return done(i + 3, i + 3);
        i++; // a stuffed dot (RFC 5321 4.5.2): deleted, the line goes on
        continue;
      }
    }
    if (c === CR) {
      if (i + 1 >= n) return done(null, i);
      if (input[i + 1] === LF) {
        lineEnd(i);
        out.push(CR, LF);
        lineOutput = out.length;
        i += 2;
        lineStart = true;
        continue;
      }
      // A bare CR (counted where the mode looks at CRs, i.e. not in leave mode).
      if (mode !== "leave") bare++;
      if (mode !== "ensure") out.push(CR);
      i++;
      continue;
    }
    if (c === LF) {
      bare++;
      if (mode === "ensure") {
        // Stored as a line end (CRLF), though not one that starts a line for dot-stuffing or the end.
        lineEnd(i);
        out.push(CR, LF);
        lineOutput = out.length;
      } else {
        out.push(LF);
      }
      i++;
      continue;
    }
    out.push(c);
    i++;
  }
  return done(null, n);
}

/** Splits `buffer` at `cuts` (any order, duplicates give empty chunks). */
function splitAt(buffer: Buffer, cuts: readonly number[]): Buffer[] {
  const sorted = [...cuts].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of sorted) {
    chunks.push(buffer.subarray(from, cut));
    from = cut;
  }
  chunks.push(buffer.subarray(from));
  return chunks;
}

/** True when every CR is followed by LF and every LF follows a CR. */
function onlyCrlf(data: Buffer): boolean {
  for (let i = 0; i < data.length; i++) {
    if (data[i] === CR && data[i + 1] !== LF) return false;
    if (data[i] === LF && data[i - 1] !== CR) return false;
  }
  return true;
}

const modeArb = fc.constantFrom(...CRLF_MODES);
/** Raw cut seeds: reduced modulo the length of whatever they split. */
const cutSeedsArb = fc.array(fc.nat(), { maxLength: 12 });
const chunkingArb = fc.record({ byteByByte: fc.boolean(), seeds: cutSeedsArb });

function cutsFor(length: number, chunking: { byteByByte: boolean; seeds: number[] }): number[] {
  if (chunking.byteByByte) return Array.from({ length: Math.max(length - 1, 0) }, (_, i) => i + 1);
  return chunking.seeds.map((seed) => seed % (length + 1));
}

// ---------------------------------------------------------------------------------------------------
// Decoder properties

/** A line without CR or LF, often starting with dots. */
const lineArb = fc
  .tuple(
    fc.nat({ max: 3 }),
    fc.array(
      fc.oneof(
        fc.constantFrom(DOT, 0, 0x20, 0x41, 0x7f, 0xff),
        fc.integer({ min: 0, max: 255 }).filter((b) => b !== CR && b !== LF),
      ),
      { maxLength: 12 },
    ),
  )
  .map(([dots, rest]) => Buffer.from([...Array<number>(dots).fill(DOT), ...rest]));

test("property: dot-stuffing then decoding gives back the message, in any chunking and every mode", () => {
  fc.assert(
    fc.property(
      fc.array(lineArb, { maxLength: 16 }),
      fc.uint8Array({ maxLength: 6 }),
      modeArb,
      chunkingArb,
      (lines, trailer, mode, chunking) => {
        const crlf = bytes("\r\n");
        const message = Buffer.concat(lines.flatMap((line) => [line, crlf]));
        // RFC 5321 4.5.2: a line starting with "." gets one more "." in front.
        const stuffed = Buffer.concat([
          ...lines.flatMap((line) => (line[0] === DOT ? [bytes("."), line, crlf] : [line, crlf])),
          bytes(".\r\n"),
        ]);
        const input = Buffer.concat([stuffed, trailer]);
        const r = decodeChunks(mode, splitAt(input, cutsFor(input.length, chunking)));
        assert.deepEqual(r.output, message);
        assert.equal(r.end, stuffed.length, "ends right after the terminator, the trailer is left");
        assert.equal(r.bareLineBreaks, 0);
        // The header block ends at the first empty line, if any.
        const empty = lines.findIndex((line) => line.length === 0);
        if (empty === -1) {
          assert.deepEqual(r.headersEnd, []);
        } else {
          const before = lines.slice(0, empty);
          const at = before.reduce((sum, line) => sum + line.length + 2 + (line[0] === DOT ? 1 : 0), 0);
          const outputLength = before.reduce((sum, line) => sum + line.length + 2, 0);
          assert.deepEqual(r.headersEnd, [{ at, outputLength }]);
        }
      },
    ),
    { numRuns: 400 },
  );
});

/** Byte streams rich in what matters to the decoder: CR, LF, dots, NUL, terminators and near misses. */
const dataTokens = [
  "\r",
  "\n",
  "\r\n",
  ".",
  "..",
  "\x00",
  "a",
  "Subject: x",
  "\r\n.\r\n",
  "\r\n.",
  ".\r\n",
  "\r\n\r\n",
  "\n.\n",
  "\r.\r",
  "\n\n",
];
const dataStreamArb = fc
  .array(
    fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...dataTokens).map(bytes) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 8 }).map((u) => Buffer.from(u)) },
    ),
    { maxLength: 40 },
  )
  .map((parts) => Buffer.concat(parts));

test("property: for any bytes, chunking changes nothing and the decoder follows the reference rules", () => {
  fc.assert(
    fc.property(dataStreamArb, modeArb, chunkingArb, (input, mode, chunking) => {
      const whole = decodeChunks(mode, [input]);
      const split = decodeChunks(mode, splitAt(input, cutsFor(input.length, chunking)));
      assert.deepEqual(split, whole, "split and unsplit agree");
      assert.deepEqual(whole, referenceDecode(input, mode), "the decoder agrees with the reference");
      if (mode === "ensure") assert.ok(onlyCrlf(whole.output), "ensure mode only emits CRLF line ends");
      if (mode !== "leave" && whole.bareLineBreaks === 0) {
        assert.ok(onlyCrlf(whole.output), "no bare line break counted means none emitted");
      }
    }),
    { numRuns: 500 },
  );
});

// ---------------------------------------------------------------------------------------------------
// Session properties

/** One piece of client input; `wait` means the client waits for the replies after it. */
interface Segment {
  bytes: Buffer;
  wait: boolean;
}

const utf8 = (text: string): Buffer => Buffer.from(text, "utf8");

const commandArb = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.constantFrom(
      "EHLO client.test\r\n",
      "HELO client.test\r\n",
      "MAIL FROM:<a@x.test>\r\n",
      "MAIL FROM:<> SIZE=10\r\n",
      "MAIL FROM:<a@x.test> BODY=8BITMIME SMTPUTF8\r\n",
      "MAIL FROM:<a@x.test> FOO=bar\r\n",
      "RCPT TO:<b@y.test>\r\n",
      "RCPT TO:<c@y.test>\r\n",
      "RCPT TO:<no@y.test>\r\n",
      "RCPT TO:<Postmaster>\r\n",
      "DATA\r\n",
      "DATA now\r\n",
      "RSET\r\n",
      "NOOP\r\n",
      "HELP\r\n",
      "VRFY b\r\n",
      "EXPN list\r\n",
      "BDAT 10 LAST\r\n",
      "STARTTLS\r\n",
      "mail from:<A@X.TEST>\n",
      "EHLO\r\n",
      "\r\n",
    ),
  },
  // Client text that replies might echo: control characters, non-ASCII, a line separator.
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "MAIL FROM:<a@x.test> K\x1b[31m=1\r\n",
      "MAIL FROM:<a@x.test> \u00e9t\u00e9=1\r\n",
      "MAIL FROM:<a@x.test> X=\u2028\r\n",
      "MAIL FROM:<a@x.test> \u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}=1\r\n",
      "MAIL FROM:<a@x.test> A\tB\r\n",
      "RCPT TO:<b\u00e9@y.test>\r\n",
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom("QUIT\r\n", "GET / HTTP/1.0\r\n") },
);

/** Lines that are not commands: random text and bytes, over-long lines, NUL, bare CR, invalid UTF-8. */
const junkLineArb = fc.oneof(
  fc
    .tuple(fc.string({ maxLength: 30 }), fc.constantFrom("\r\n", "\n"))
    .map(([text, end]) => utf8(text + end)),
  fc.uint8Array({ maxLength: 30 }).map((u) => Buffer.concat([Buffer.from(u), bytes("\r\n")])),
  fc.constantFrom(
    bytes(`${"x".repeat(600)}\r\n`),
    bytes(`NOOP ${"y".repeat(100)}\r\n`),
    bytes("NO\x00OP\r\n"),
    bytes("NOOP\r\r\n"),
    bytes("RSET\rNOOP\r\n"),
    bytes("EHLO \xff\xfe\r\n"),
  ),
);

/** Message content rich in dots, bare CR/LF, near-terminators and smuggling attempts. */
const bodyArb = fc
  .array(
    fc.oneof(
      {
        weight: 4,
        arbitrary: fc.constantFrom(
          "Subject: t\r\n",
          "\r\n",
          "text\r\n",
          "..dot\r\n",
          ".\r\n",
          ".",
          "\n.\n",
          "\r.\r",
          "\r\n.\n",
          "\r\n.\r",
          "\n",
          "\r",
          "\x00",
          "MAIL FROM:<evil@x.test>\r\n",
          "DATA\r\n",
        ),
      },
      {
        weight: 1,
        arbitrary: fc.uint8Array({ maxLength: 10 }).map((u) => Buffer.from(u).toString("latin1")),
      },
    ),
    { maxLength: 12 },
  )
  .map((parts) => bytes(parts.join("")));

const transactionArb: fc.Arbitrary<Segment[]> = fc
  .tuple(
    fc.constantFrom("MAIL FROM:<a@x.test>\r\n", "MAIL FROM:<>\r\n"),
    fc.array(fc.constantFrom("RCPT TO:<b@y.test>\r\n", "RCPT TO:<no@y.test>\r\n", "RCPT TO:<c@y.test>\r\n"), {
      minLength: 1,
      maxLength: 3,
    }),
    bodyArb,
    fc.constantFrom("\r\n.\r\n", ".\r\n"),
    fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
  )
  .map(([mail, rcpts, body, end, waits]) => [
    { bytes: bytes(mail), wait: waits[0] as boolean },
    ...rcpts.map((rcpt, i) => ({ bytes: bytes(rcpt), wait: waits[1 + i] as boolean })),
    // A client mostly waits for the 354 (it must with PIPELINING, RFC 2920 3.1).
    { bytes: bytes("DATA\r\n"), wait: (waits[4] as boolean) || (waits[5] as boolean) },
    { bytes: Buffer.concat([body, bytes(end)]), wait: waits[5] as boolean },
  ]);

const segmentsArb: fc.Arbitrary<Segment[]> = fc
  .array(
    fc.oneof(
      {
        weight: 4,
        arbitrary: fc.tuple(commandArb, fc.boolean()).map(([c, wait]) => [{ bytes: utf8(c), wait }]),
      },
      { weight: 3, arbitrary: transactionArb },
      { weight: 2, arbitrary: fc.tuple(junkLineArb, fc.boolean()).map(([b, wait]) => [{ bytes: b, wait }]) },
      { weight: 1, arbitrary: fc.tuple(bodyArb, fc.boolean()).map(([b, wait]) => [{ bytes: b, wait }]) },
      {
        weight: 1,
        arbitrary: fc
          .tuple(fc.uint8Array({ maxLength: 40 }), fc.boolean())
          .map(([u, wait]) => [{ bytes: Buffer.from(u), wait }]),
      },
    ),
    { maxLength: 10 },
  )
  .map((groups) => [{ bytes: bytes("EHLO client.test\r\n"), wait: true }, ...groups.flat()]);

interface Setup {
  config: Partial<SessionConfig>;
  /** Hooks that await a macrotask before answering. */
  asyncHooks: boolean;
  /** The data-start and headers hooks insert header lines with ctx.message.write(). */
  insertHeaders: boolean;
  /** The message goes to an onMessageStream consumer (with a small highWaterMark: backpressure). */
  stream: boolean;
}

const setupArb = (options: { smallIoBuffer: boolean }): fc.Arbitrary<Setup> =>
  fc.record({
    config: fc.record({
      crlfMode: modeArb,
      pipelining: fc.boolean(),
      internationalization: fc.boolean(),
      maxMessageSize: fc.constantFrom(1024 * 1024, 60, 0),
      maxRecipients: fc.constantFrom(100, 1),
      maxBadCommands: fc.constantFrom(20, 3),
      maxCommandLineLength: fc.constantFrom(512, 40),
      // Over-long lines are dropped as they come and the connection closed past ioBufferMaxSize, which
      // depends on how much arrives at once: the split-invariance property keeps it out of reach.
      ioBufferMaxSize: options.smallIoBuffer ? fc.constantFrom(1024 * 1024, 100) : fc.constant(1024 * 1024),
      messageChunkSize: fc.constantFrom(64 * 1024, 8),
    }),
    asyncHooks: fc.boolean(),
    insertHeaders: fc.boolean(),
    stream: fc.boolean(),
  });

interface Delivered {
  from: string;
  to: string[];
  data: Buffer;
}

interface Outcome {
  greeting: string;
  written: string[];
  delivered: Delivered[];
  closed: boolean;
  logs: string[];
}

/** Waits until the session has handled everything it was given (including a slow stream consumer). */
async function settle(session: SmtpSession): Promise<void> {
  await session.whenIdle();
  // One more turn of the event loop: a stream consumer that resolves late may still write a reply.
  await new Promise<void>((resolve) => setImmediate(resolve));
  await session.whenIdle();
}

/**
 * Runs a session over `chunks`, waiting after each one until the session is idle: the client of these
 * tests never sends while the server still works on earlier input.
 */
async function runSession(setup: Setup, chunks: readonly Buffer[]): Promise<Outcome> {
  const delivered: Delivered[] = [];
  let streamed: Buffer | null = null;
  const later = async <T>(answer: () => T): Promise<T> => {
    await new Promise<void>((resolve) => setImmediate(resolve));
    return answer();
  };
  const maybeAsync = <T>(answer: () => T): T | Promise<T> => (setup.asyncHooks ? later(answer) : answer());
  const hooks: Partial<SessionHooks> = {
    onRcptTo: (_ctx, address) =>
      maybeAsync(() => {
        if (address.startsWith("no@")) throw new SmtpError(550, "No such user here", "5.1.1");
        return undefined;
      }),
    onMessageDataStart: (ctx) =>
      maybeAsync(() => {
        if (setup.insertHeaders) ctx.message.write("Received: by mx.test\r\n");
      }),
    onMessageDataHeaders: (ctx) =>
      maybeAsync(() => {
        if (setup.insertHeaders) ctx.message.write("X-Checked: yes\r\n");
      }),
    onMessageData: (ctx) =>
      maybeAsync(() => {
        const data = setup.stream ? (streamed ?? Buffer.alloc(0)) : Buffer.from(ctx.message.data);
        delivered.push({ from: ctx.envelope.from, to: [...ctx.envelope.to], data });
        streamed = null;
        return undefined;
      }),
  };
  if (setup.stream) {
    hooks.onMessageStream = async (_ctx, stream) => {
      const parts: Buffer[] = [];
      for await (const part of stream) parts.push(part as Buffer);
      streamed = Buffer.concat(parts);
    };
  }
  const t = await openSession({ config: setup.config, hooks });
  for (const chunk of chunks) {
    t.session.receive(chunk);
    await settle(t.session);
  }
  return { greeting: t.greeting, written: [...t.written], delivered, closed: t.closed, logs: t.logs };
}

/**
 * Checks the reply stream: every line is "ddd" + " " or "-" + text + CRLF with printable ASCII text
 * (RFC 5321 4.2 textstring), all lines of a reply share its code, continuation lines use "-" and the last
 * " ", and no write ends in the middle of a multi-line reply.
 */
function assertWellFormedReplies(writes: readonly string[]): void {
  for (const text of writes) {
    assert.ok(text.endsWith("\r\n"), `a write ends with CRLF: ${JSON.stringify(text)}`);
    let code: string | null = null; // the code of the multi-line reply under way
    for (const line of text.slice(0, -2).split("\r\n")) {
      assert.match(`${line}\r\n`, /^[2-5][0-9]{2}[ -].*\r\n$/, `reply line ${JSON.stringify(line)}`);
      assert.match(line, /^[\t\x20-\x7e]*$/, `reply text is printable ASCII: ${JSON.stringify(line)}`);
      if (code !== null) assert.equal(line.slice(0, 3), code, `continuation of a ${code} reply`);
      code = line[3] === "-" ? line.slice(0, 3) : null;
    }
    assert.equal(code, null, `the last line of a reply uses " ": ${JSON.stringify(text)}`);
  }
}

function assertNoInternalError(outcome: Outcome): void {
  const errors = outcome.logs.filter((line) => line.startsWith("error:") || line.startsWith("fatal:"));
  assert.deepEqual(errors, [], "no internal error or failed hook");
}

function assertCleanMessages(outcome: Outcome, mode: CrlfMode | undefined): void {
  if (mode === "leave") return;
  for (const message of outcome.delivered) {
    assert.ok(onlyCrlf(message.data), `a delivered ${mode} message has only CRLF line ends`);
  }
}

/*
 * Chunking and the protocol. Where the client pauses between command lines is visible to the server by
 * design: with PIPELINING off, a command followed by more buffered input is refused ("500 5.5.0 Bad
 * input"), and with PIPELINING on, input buffered after EHLO, DATA, NOOP... is refused with "554 5.5.0"
 * and the connection closed (RFC 2920 3.1; this is also what stops smuggled commands before the 354).
 * So "split vs unsplit" cannot be compared naively. A cut right after an LF is the only kind the
 * protocol can see: it decides whether a command line is the last buffered one. A cut anywhere else
 * (inside a line, inside message data) must change nothing at all. So each generated stream comes with
 * cuts (the client's waits after a segment, random cuts, one byte per chunk), and the baseline is the
 * same stream cut only at those cuts that follow an LF: both runs then see the same "last buffered
 * line" everywhere, and must produce the same reply bytes, the same delivered messages and the same
 * connection state. When no cut follows an LF, the baseline is the unsplit stream. Every chunk is handled
 * to completion before the next is given (see runSession), as a client waiting for replies would.
 */
const streamArb = fc.record({
  segments: segmentsArb,
  extraCuts: cutSeedsArb,
  lineEndCuts: fc.array(fc.nat(), { maxLength: 4 }),
  byteByByte: fc.boolean(),
});

function cutsOf(
  stream: Buffer,
  segments: readonly Segment[],
  extra: number[],
  lineEnds: number[],
  byteByByte: boolean,
) {
  const cuts = new Set<number>();
  let offset = 0;
  for (const segment of segments) {
    offset += segment.bytes.length;
    if (segment.wait) cuts.add(offset);
  }
  if (byteByByte) for (let i = 1; i < stream.length; i++) cuts.add(i);
  for (const seed of extra) cuts.add(seed % (stream.length + 1));
  const afterLf: number[] = [];
  for (let i = 1; i <= stream.length; i++) if (stream[i - 1] === LF) afterLf.push(i);
  if (afterLf.length > 0) for (const seed of lineEnds) cuts.add(afterLf[seed % afterLf.length] as number);
  cuts.delete(0);
  cuts.delete(stream.length);
  return [...cuts].sort((a, b) => a - b);
}

test("property: a session answers the same whatever the chunking (cuts inside lines change nothing)", async () => {
  await fc.assert(
    fc.asyncProperty(setupArb({ smallIoBuffer: false }), streamArb, async (setup, s) => {
      const stream = Buffer.concat(s.segments.map((segment) => segment.bytes));
      const cuts = cutsOf(stream, s.segments, s.extraCuts, s.lineEndCuts, s.byteByByte);
      const lineEndCuts = cuts.filter((cut) => stream[cut - 1] === LF);
      const baseline = await runSession(setup, splitAt(stream, lineEndCuts));
      const split = await runSession(setup, splitAt(stream, cuts));
      assert.equal(split.written.join(""), baseline.written.join(""), "the same reply bytes");
      assert.deepEqual(split.delivered, baseline.delivered, "the same delivered messages");
      assert.equal(split.closed, baseline.closed, "the same connection state");
      for (const outcome of [baseline, split]) {
        assertWellFormedReplies([outcome.greeting, ...outcome.written]);
        assertNoInternalError(outcome);
        assertCleanMessages(outcome, setup.config.crlfMode);
      }
    }),
    { numRuns: 300 },
  );
});

test("property: no input makes the session throw, and every reply is well formed", async () => {
  const anyBytesArb = fc
    .array(
      fc.oneof(
        segmentsArb.map((segments) => Buffer.concat(segments.map((segment) => segment.bytes))),
        fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u)),
        bodyArb,
      ),
      { maxLength: 3 },
    )
    .map((parts) => Buffer.concat(parts));
  await fc.assert(
    fc.asyncProperty(
      setupArb({ smallIoBuffer: true }),
      anyBytesArb,
      chunkingArb,
      async (setup, input, chunking) => {
        const outcome = await runSession(setup, splitAt(input, cutsFor(input.length, chunking)));
        assertWellFormedReplies([outcome.greeting, ...outcome.written]);
        assertNoInternalError(outcome);
        assertCleanMessages(outcome, setup.config.crlfMode);
      },
    ),
    { numRuns: 300 },
  );
});

test("a bad ESMTP parameter is echoed as printable ASCII only (found by the property above)", async () => {
  const t = await openSession();
  await t.send("EHLO client.test\r\n");
  const cases: [parameter: string, shown: string][] = [
    ["K\x1b[31m=1", "K?[31m=1"], // a terminal escape sequence
    ["X=\u2028", "X=?"], // a line separator: not a CR or LF, but a line break to JavaScript and others
    ["A\tB", "A?B"],
    // 40 UTF-16 units end in the middle of a surrogate pair: no lone surrogate reaches the wire.
    [`a${"\u{1f600}".repeat(20)}=1`, `a${"?".repeat(39)}`],
  ];
  for (const [parameter, shown] of cases) {
    assert.equal(
      await t.send(Buffer.from(`MAIL FROM:<a@x.test> ${parameter}\r\n`, "utf8")),
      `501 5.5.4 Syntax error in parameter "${shown}"\r\n`,
      JSON.stringify(parameter),
    );
  }
});
