/**
 * The session's input buffer, without a session: line framing for commands and SASL responses (CRLF or
 * bare LF, the limit counting the line end, over-long lines dropped as they come), body reads and skips.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { BodyStop } from "../../src/protocol/body-reader.js";
import { InputBuffer, TakenLine } from "../../src/protocol/input-buffer.js";

function buffer(...chunks: string[]): InputBuffer {
  const input = new InputBuffer();
  for (const chunk of chunks) input.append(Buffer.from(chunk, "latin1"));
  return input;
}

/** Takes a line and returns it as text, or the TakenLine value when there is none. */
function take(input: InputBuffer, max = 512): string | TakenLine {
  const taken = input.takeLine(max);
  return taken === TakenLine.Line ? input.lineText() : taken;
}

test("lines end at LF, with or without CR; the line end is not part of the line", () => {
  const input = buffer("NOOP\r\nRSET\nQUIT\r\n");
  assert.equal(take(input), "NOOP");
  assert.equal(input.lineEndsWithCrlf, true);
  assert.equal(take(input), "RSET");
  assert.equal(input.lineEndsWithCrlf, false);
  assert.equal(take(input), "QUIT");
  assert.equal(take(input), TakenLine.None);
  assert.equal(input.buffered, 0);
});

test("an empty line is a line; a lone CR before LF is its line end, a CR elsewhere stays", () => {
  const input = buffer("\r\n\nA\rB\r\n\r\r\n");
  assert.equal(take(input), "");
  assert.equal(input.lineEndsWithCrlf, true);
  assert.equal(take(input), "");
  assert.equal(input.lineEndsWithCrlf, false);
  assert.equal(take(input), "A\rB");
  assert.equal(take(input), "\r");
});

test("lineStart and lineEnd delimit the line in bytes", () => {
  const input = buffer("AB\r\nCDE\n");
  input.takeLine(512);
  assert.deepEqual([input.lineStart, input.lineEnd], [0, 2]);
  input.takeLine(512);
  assert.deepEqual([input.lineStart, input.lineEnd], [4, 7]);
  assert.equal(input.bytes.toString("latin1", input.lineStart, input.lineEnd), "CDE");
});

test("a line split across chunks is taken once its end arrives; unread bytes are kept in order", () => {
  const input = buffer("NO");
  assert.equal(take(input), TakenLine.None);
  assert.equal(input.buffered, 2);
  input.append(Buffer.from("OP\r"));
  assert.equal(take(input), TakenLine.None);
  input.append(Buffer.from("\nRS"));
  assert.equal(take(input), "NOOP");
  assert.equal(input.lineEndsWithCrlf, true);
  assert.equal(input.buffered, 2);
  assert.equal(input.offset, 6);
  input.append(Buffer.from("ET\r\n"));
  assert.equal(input.offset, 0, "appending keeps only the unread bytes");
  assert.equal(input.bytes.toString("latin1"), "RSET\r\n");
  assert.equal(take(input), "RSET");
});

test("the limit counts the line end: a line of exactly max octets with CRLF fits, one more does not", () => {
  const fits = buffer(`${"a".repeat(8)}\r\n`);
  assert.equal(take(fits, 10), "a".repeat(8));
  const over = buffer(`${"a".repeat(9)}\r\n`, "NOOP\r\n");
  assert.equal(take(over, 10), TakenLine.TooLong);
  assert.equal(take(over, 10), "NOOP", "the next line is read normally");
  const bareLf = buffer(`${"a".repeat(9)}\n`);
  assert.equal(take(bareLf, 10), "a".repeat(9));
});

test("an over-long line is dropped as it comes, counted, and reported once when it ends", () => {
  const input = buffer("a".repeat(20));
  assert.equal(take(input, 10), TakenLine.None);
  assert.equal(input.buffered, 0, "not kept");
  assert.equal(input.skippedLineBytes, 20);
  input.append(Buffer.from("b".repeat(5)));
  assert.equal(take(input, 10), TakenLine.None);
  assert.equal(input.skippedLineBytes, 25);
  input.append(Buffer.from("c\r\nNOOP\r\n"));
  assert.equal(take(input, 10), TakenLine.TooLong);
  assert.equal(input.skippedLineBytes, 0);
  assert.equal(take(input, 10), "NOOP");
  // While no line is dropped, an incomplete one within the limit is kept.
  const short = buffer("a".repeat(10));
  assert.equal(take(short, 10), TakenLine.None);
  assert.equal(short.buffered, 10);
  assert.equal(short.skippedLineBytes, 0);
  // Once dropping, even a short tail is dropped until the line ends.
  const tail = buffer("a".repeat(11));
  assert.equal(take(tail, 10), TakenLine.None);
  tail.append(Buffer.from("b"));
  assert.equal(take(tail, 10), TakenLine.None);
  assert.equal(tail.buffered, 0);
  assert.equal(tail.skippedLineBytes, 12);
});

test("drop() forgets what is buffered; skip() drops at most what is there", () => {
  const input = buffer("STARTTLS\r\nEHLO x\r\n");
  input.takeLine(512);
  input.drop();
  assert.equal(input.buffered, 0);
  assert.equal(take(input), TakenLine.None);
  const chunk = buffer("0123456789");
  assert.equal(chunk.skip(4), 4);
  assert.equal(chunk.buffered, 6);
  assert.equal(chunk.skip(100), 6);
  assert.equal(chunk.buffered, 0);
  assert.equal(chunk.skip(1), 0);
});

test("readBody hands the reader the unread bytes and moves past what it consumed", () => {
  const input = buffer("HEAD\r\n", "body");
  input.takeLine(512);
  const seen: [string, number][] = [];
  const consumed = input.readBody({
    stop: BodyStop.NeedMore,
    read(bytes: Buffer, start: number) {
      seen.push([bytes.toString("latin1"), start]);
      return start + 2;
    },
  });
  assert.deepEqual(seen, [["HEAD\r\nbody", 6]]);
  assert.equal(consumed, 2);
  assert.equal(input.offset, 8);
  assert.equal(input.buffered, 2);
});
