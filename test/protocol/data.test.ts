/**
 * Unit tests of the DATA decoder: end of data, dot-unstuffing, the CRLF modes, SMTP smuggling variants,
 * chunking, the end of the header block and zero-copy output. Inputs and outputs are written as latin1
 * strings so every byte is visible.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BodyStop } from "../../src/protocol/body-reader.js";
import { CRLF_MODES, type CrlfMode, DataDecoder } from "../../src/protocol/data.js";

const bytes = (text: string): Buffer => Buffer.from(text, "latin1");

interface Decoded {
  /** Everything emitted, as latin1. */
  output: string;
  emitted: Buffer[];
  /** Absolute position just after <CRLF>.<CRLF>, or null when the end was not reached. */
  end: number | null;
  /** Absolute position where decoding stopped (the end, or the start of the unconsumed tail). */
  pos: number;
  /** Absolute positions where HeadersEnd was returned, with the output length at that moment. */
  headersEnd: { at: number; outputLength: number }[];
  bareLineBreaks: number;
}

/**
 * Feeds chunks the way the session does: on NeedMore the unconsumed tail is kept and concatenated with
 * the next chunk; on HeadersEnd decoding goes on from the returned position.
 */
function decodeChunks(mode: CrlfMode, chunks: readonly (Buffer | string)[]): Decoded {
  const emitted: Buffer[] = [];
  let outputLength = 0;
  const decoder = new DataDecoder(mode, (chunk) => {
    assert.ok(chunk.length > 0, "no empty chunk is emitted");
    emitted.push(chunk);
    outputLength += chunk.length;
  });
  const headersEnd: Decoded["headersEnd"] = [];
  const result = (end: number | null, pos: number): Decoded => ({
    output: Buffer.concat(emitted).toString("latin1"),
    emitted,
    end,
    pos,
    headersEnd,
    bareLineBreaks: decoder.bareLineBreaks,
  });
  let tail: Buffer = Buffer.alloc(0);
  let base = 0; // absolute position of tail[0]
  for (const part of chunks) {
    const chunk = typeof part === "string" ? bytes(part) : part;
    const input = tail.length === 0 ? chunk : Buffer.concat([tail, chunk]);
    let pos = 0;
    for (;;) {
      const next = decoder.read(input, pos);
      assert.ok(next >= pos && next <= input.length, "the position stays within the input");
      pos = next;
      if (decoder.stop === BodyStop.HeadersEnd) {
        headersEnd.push({ at: base + pos, outputLength });
        assert.ok(headersEnd.length <= 1, "HeadersEnd fires at most once");
        continue;
      }
      if (decoder.stop === BodyStop.End) return result(base + pos, base + pos);
      break;
    }
    assert.ok(input.length - pos <= 2, `NeedMore leaves at most 2 bytes, left ${input.length - pos}`);
    tail = input.subarray(pos);
    base += pos;
  }
  return result(null, base);
}

/** One byte per chunk. */
function byteChunks(text: string): string[] {
  return [...text];
}

describe("end of data", () => {
  for (const mode of CRLF_MODES) {
    test(`${mode}: <CRLF>.<CRLF> ends the message and its CRLF belongs to the message`, () => {
      const input = "Subject: x\r\n\r\nbody\r\n.\r\n";
      const r = decodeChunks(mode, [input]);
      assert.equal(r.output, "Subject: x\r\n\r\nbody\r\n");
      assert.equal(r.end, input.length);
      assert.equal(r.bareLineBreaks, 0);
    });

    test(`${mode}: an empty message is "." right at the start`, () => {
      const r = decodeChunks(mode, [".\r\nQUIT\r\n"]);
      assert.equal(r.output, "");
      assert.equal(r.end, 3);
      assert.deepEqual(r.headersEnd, []);
    });

    test(`${mode}: bytes after the end are not consumed`, () => {
      const r = decodeChunks(mode, ["a\r\n.\r\nMAIL FROM:<x@y.test>\r\n"]);
      assert.equal(r.output, "a\r\n");
      assert.equal(r.end, 6);
      // Directly: the returned position is right after the terminator, and decoding may start mid-buffer.
      const input = bytes("DATA\r\nhello\r\n.\r\nQUIT\r\n");
      const emitted: Buffer[] = [];
      const decoder = new DataDecoder(mode, (chunk) => emitted.push(chunk));
      assert.equal(decoder.read(input, 6), 16);
      assert.equal(decoder.stop, BodyStop.End);
      assert.equal(Buffer.concat(emitted).toString("latin1"), "hello\r\n");
      assert.equal(input.subarray(16).toString("latin1"), "QUIT\r\n");
    });

    test(`${mode}: a message that is one empty line, and one that is an empty line then text`, () => {
      assert.equal(decodeChunks(mode, ["\r\n.\r\n"]).output, "\r\n");
      assert.equal(decodeChunks(mode, ["\r\n\r\nx\r\n.\r\n"]).output, "\r\n\r\nx\r\n");
    });

    test(`${mode}: without the terminator everything but an undecidable tail is decoded`, () => {
      let r = decodeChunks(mode, ["abc\r\ndef"]);
      assert.equal(r.end, null);
      assert.equal(r.output, "abc\r\ndef");
      assert.equal(r.pos, 8);
      r = decodeChunks(mode, ["abc\r\n."]); // "." at a line start: may be the terminator
      assert.equal(r.output, "abc\r\n");
      assert.equal(r.pos, 5);
      r = decodeChunks(mode, ["abc\r\n.\r"]);
      assert.equal(r.output, "abc\r\n");
      assert.equal(r.pos, 5);
      r = decodeChunks(mode, ["abc\r"]); // a CR at the end: may be the first half of a CRLF
      assert.equal(r.output, "abc");
      assert.equal(r.pos, 3);
      r = decodeChunks(mode, [""]);
      assert.equal(r.output, "");
      assert.equal(r.pos, 0);
    });
  }
});

describe("dot-unstuffing", () => {
  const cases: [input: string, output: string][] = [
    ["..a\r\n.\r\n", ".a\r\n"], // at the start of the message
    ["x\r\n..y\r\n.\r\n", "x\r\n.y\r\n"], // at the start of a line
    ["...\r\n.\r\n", "..\r\n"],
    ["..\r\n.\r\n", ".\r\n"], // a line that is a lone dot, stuffed
    [". \r\n.\r\n", " \r\n"],
    ["a.b\r\nc.\r\n.\r\n", "a.b\r\nc.\r\n"], // not at a line start: kept
    ["x\r\n.\x00\r\n.\r\n", "x\r\n\x00\r\n"],
    ["x\r\n..\r\n..\r\n.\r\n", "x\r\n.\r\n.\r\n"],
  ];
  for (const mode of CRLF_MODES) {
    for (const [input, output] of cases) {
      test(`${mode}: ${JSON.stringify(input)} -> ${JSON.stringify(output)}`, () => {
        const r = decodeChunks(mode, [input]);
        assert.equal(r.output, output);
        assert.equal(r.end, input.length);
        assert.equal(r.bareLineBreaks, 0);
        const split = decodeChunks(mode, byteChunks(input));
        assert.equal(split.output, output, "one byte per chunk");
        assert.equal(split.end, input.length, "one byte per chunk");
      });
    }
  }

  // A bare LF or bare CR never starts a line: the dots after it are content (and no end of data).
  const afterBare: [input: string, ensure: string, leave: string, bare: number][] = [
    ["line\n..\r\n.\r\n", "line\r\n..\r\n", "line\n..\r\n", 1],
    ["line\r..\r\n.\r\n", "line..\r\n", "line\r..\r\n", 1],
    ["\n..\r\n.\r\n", "\r\n..\r\n", "\n..\r\n", 1],
  ];
  for (const [input, ensure, leave, bare] of afterBare) {
    test(`no unstuffing after a bare line break: ${JSON.stringify(input)}`, () => {
      for (const mode of CRLF_MODES) {
        const r = decodeChunks(mode, [input]);
        assert.equal(r.output, mode === "ensure" ? ensure : leave, mode);
        assert.equal(r.end, input.length, mode);
        if (mode !== "leave") assert.equal(r.bareLineBreaks, bare, mode);
      }
    });
  }

  test('a dot followed by a bare CR is a stuffed dot (".\\rx" is not a terminator)', () => {
    const input = "a\r\n.\rx\r\n.\r\n";
    assert.equal(decodeChunks("ensure", [input]).output, "a\r\nx\r\n");
    assert.equal(decodeChunks("leave", [input]).output, "a\r\n\rx\r\n");
    const strict = decodeChunks("strict", [input]);
    assert.equal(strict.output, "a\r\n\rx\r\n");
    assert.equal(strict.bareLineBreaks, 1);
  });
});

describe("SMTP smuggling: only a real <CRLF>.<CRLF> ends the message", () => {
  // [variant, ensure output, leave/strict output, bareLineBreaks in strict and ensure]; the input is
  // "body" + variant + "more\r\n.\r\n". ensure turns a bare LF into CRLF and deletes a bare CR; leave and
  // strict keep the bytes (strict counts them); a dot right after a real CRLF is unstuffed in every mode.
  const variants: [variant: string, ensure: string, kept: string, bare: number][] = [
    ["\n.\n", "body\r\n.\r\nmore\r\n", "body\n.\nmore\r\n", 2],
    ["\n.\r\n", "body\r\n.\r\nmore\r\n", "body\n.\r\nmore\r\n", 1],
    ["\r\n.\n", "body\r\n\r\nmore\r\n", "body\r\n\nmore\r\n", 1],
    ["\r.\r", "body.more\r\n", "body\r.\rmore\r\n", 2],
    ["\r.\n", "body.\r\nmore\r\n", "body\r.\nmore\r\n", 2],
    ["\n.\r", "body\r\n.more\r\n", "body\n.\rmore\r\n", 2],
    ["\r.\r\n", "body.\r\nmore\r\n", "body\r.\r\nmore\r\n", 1],
    ["\r\n.\r", "body\r\nmore\r\n", "body\r\n\rmore\r\n", 1],
    // No bare line break in these two: NUL is content, and ".\x00" is a stuffed dot.
    ["\r\n\x00.\r\n", "body\r\n\x00.\r\nmore\r\n", "body\r\n\x00.\r\nmore\r\n", 0],
    ["\r\n.\x00\r\n", "body\r\n\x00\r\nmore\r\n", "body\r\n\x00\r\nmore\r\n", 0],
    ["\r\n.\r\r\n", "body\r\n\r\nmore\r\n", "body\r\n\r\r\nmore\r\n", 1],
    ["\r\r\n.\r\r\n", "body\r\n\r\nmore\r\n", "body\r\r\n\r\r\nmore\r\n", 2],
  ];
  for (const [variant, ensure, kept, bare] of variants) {
    test(JSON.stringify(variant), () => {
      const input = `body${variant}more\r\n.\r\nNEXT`;
      const realEnd = input.length - 4;
      for (const mode of CRLF_MODES) {
        const expected = mode === "ensure" ? ensure : kept;
        const whole = decodeChunks(mode, [input]);
        assert.equal(whole.output, expected, mode);
        assert.equal(whole.end, realEnd, `${mode}: only the real terminator ends the message`);
        if (mode !== "leave") assert.equal(whole.bareLineBreaks, bare, mode);
        const split = decodeChunks(mode, byteChunks(input));
        assert.equal(split.output, expected, `${mode}, one byte per chunk`);
        assert.equal(split.end, realEnd, `${mode}, one byte per chunk`);
        assert.equal(split.bareLineBreaks, whole.bareLineBreaks, `${mode}, one byte per chunk`);
        // The smuggled sequence alone, with nothing after it, never ends the message either.
        assert.equal(decodeChunks(mode, [`body${variant}`]).end, null, `${mode}, variant at the end`);
      }
    });
  }
});

describe("chunking", () => {
  const message = "Subject: s\r\nX: .y\r\n\r\nline1\r\n..dot\r\n.\rz\r\n";
  const input = `${message}.\r\nNEXT`;
  const terminatorEnd = input.length - 4;

  for (const mode of CRLF_MODES) {
    const whole = decodeChunks(mode, [input]);

    test(`${mode}: the reference decoding`, () => {
      const expected =
        mode === "ensure"
          ? "Subject: s\r\nX: .y\r\n\r\nline1\r\n.dot\r\nz\r\n"
          : "Subject: s\r\nX: .y\r\n\r\nline1\r\n.dot\r\n\rz\r\n";
      assert.equal(whole.output, expected);
      assert.equal(whole.end, terminatorEnd);
      assert.deepEqual(whole.headersEnd, [{ at: 19, outputLength: 19 }]);
    });

    const same = (r: Decoded, label: string) => {
      assert.equal(r.output, whole.output, label);
      assert.equal(r.end, whole.end, label);
      assert.equal(r.bareLineBreaks, whole.bareLineBreaks, label);
      assert.deepEqual(r.headersEnd, whole.headersEnd, label);
    };

    test(`${mode}: split once at every point`, () => {
      for (let i = 0; i <= input.length; i++) {
        same(decodeChunks(mode, [input.slice(0, i), input.slice(i)]), `split at ${i}`);
      }
    });

    test(`${mode}: split twice at every pair of points`, () => {
      for (let i = 0; i <= input.length; i++) {
        for (let j = i; j <= input.length; j++) {
          same(
            decodeChunks(mode, [input.slice(0, i), input.slice(i, j), input.slice(j)]),
            `split at ${i}, ${j}`,
          );
        }
      }
    });

    test(`${mode}: one byte per chunk`, () => {
      same(decodeChunks(mode, byteChunks(input)), "one byte per chunk");
    });

    test(`${mode}: "\\r\\n." then "\\r\\n"`, () => {
      const r = decodeChunks(mode, ["abc\r\n.", "\r\nNEXT"]);
      assert.equal(r.output, "abc\r\n");
      assert.equal(r.end, 8);
      const s = decodeChunks(mode, ["abc\r\n", ".", "\r", "\n", "NEXT"]);
      assert.equal(s.output, "abc\r\n");
      assert.equal(s.end, 8);
      const t = decodeChunks(mode, ["abc\r", "\n.\r", "\nNEXT"]);
      assert.equal(t.output, "abc\r\n");
      assert.equal(t.end, 8);
    });
  }
});

describe("end of the header block", () => {
  for (const mode of CRLF_MODES) {
    test(`${mode}: stops right before the empty line, once`, () => {
      const input = "A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore\r\n.\r\n";
      const r = decodeChunks(mode, [input]);
      assert.deepEqual(r.headersEnd, [{ at: 12, outputLength: 12 }]);
      assert.equal(r.output.slice(0, 12), "A: 1\r\nB: 2\r\n");
      assert.equal(r.output, input.slice(0, -3));
      assert.equal(r.end, input.length);
    });

    test(`${mode}: a message starting with an empty line has an empty header block`, () => {
      const r = decodeChunks(mode, ["\r\nbody\r\n.\r\n"]);
      assert.deepEqual(r.headersEnd, [{ at: 0, outputLength: 0 }]);
      assert.equal(r.output, "\r\nbody\r\n");
    });

    test(`${mode}: no empty line, no HeadersEnd`, () => {
      const r = decodeChunks(mode, ["A: 1\r\nbody\r\n.\r\n"]);
      assert.deepEqual(r.headersEnd, []);
      assert.equal(r.output, "A: 1\r\nbody\r\n");
      assert.deepEqual(decodeChunks(mode, [".\r\n"]).headersEnd, []);
    });

    test(`${mode}: the empty line may be the CRLF of the terminator`, () => {
      const r = decodeChunks(mode, ["A: 1\r\n\r\n.\r\n"]);
      assert.deepEqual(r.headersEnd, [{ at: 6, outputLength: 6 }]);
      assert.equal(r.output, "A: 1\r\n\r\n");
      assert.equal(r.end, 11);
    });

    test(`${mode}: split inside the empty line`, () => {
      const r = decodeChunks(mode, ["A: 1\r\n\r", "\nbody\r\n.\r\n"]);
      assert.deepEqual(r.headersEnd, [{ at: 6, outputLength: 6 }]);
      assert.equal(r.output, "A: 1\r\n\r\nbody\r\n");
    });
  }

  test("ensure: an empty line made of a bare LF ends the header block (it will be a CRLF)", () => {
    const r = decodeChunks("ensure", ["A: 1\r\n\nbody\r\n.\r\n"]);
    assert.deepEqual(r.headersEnd, [{ at: 6, outputLength: 6 }]);
    assert.equal(r.output, "A: 1\r\n\r\nbody\r\n");
    assert.equal(r.bareLineBreaks, 1);
    const empty = decodeChunks("ensure", ["\nbody\r\n.\r\n"]);
    assert.deepEqual(empty.headersEnd, [{ at: 0, outputLength: 0 }]);
    assert.equal(empty.output, "\r\nbody\r\n");
  });

  test("ensure: headers written with bare LFs end at their bare-LF empty line", () => {
    const r = decodeChunks("ensure", ["A: 1\n\nbody\r\n.\r\n"]);
    assert.deepEqual(r.headersEnd, [{ at: 5, outputLength: 6 }]);
    assert.equal(r.output, "A: 1\r\n\r\nbody\r\n");
    const split = decodeChunks("ensure", ["A: 1\n", "\r\nbody\r\n.\r\n"]);
    assert.deepEqual(split.headersEnd, [{ at: 5, outputLength: 6 }]);
    // A dot after a bare LF is still not at a line start: it is kept.
    assert.equal(decodeChunks("ensure", ["A: 1\n..x\r\n.\r\n"]).output, "A: 1\r\n..x\r\n");
  });

  test("leave and strict: a bare LF is not an empty line (the bytes stay as sent)", () => {
    for (const mode of ["leave", "strict"] as const) {
      const r = decodeChunks(mode, ["A: 1\r\n\nbody\r\n.\r\n"]);
      assert.deepEqual(r.headersEnd, [], mode);
      assert.equal(r.output, "A: 1\r\n\nbody\r\n", mode);
    }
  });

  test("ensure: a line whose bytes are all removed is an empty line of the stored message, so it ends the headers", () => {
    // ".<LF>": the stuffed dot goes and the bare LF becomes CRLF; "<CR><CR><LF>": the bare CR goes.
    for (const [input, at] of [
      ["Subject: a\r\n.\nX-Later: b\r\n\r\nbody\r\n.\r\n", 13],
      ["Subject: a\r\n\r\r\nX-Later: b\r\n\r\nbody\r\n.\r\n", 13],
      ["Subject: a\r\n.\r\r\nX-Later: b\r\n\r\nbody\r\n.\r\n", 14],
    ] as const) {
      const r = decodeChunks("ensure", [input]);
      assert.deepEqual(r.headersEnd, [{ at, outputLength: 12 }], JSON.stringify(input));
      assert.equal(r.output, "Subject: a\r\n\r\nX-Later: b\r\n\r\nbody\r\n", JSON.stringify(input));
    }
  });

  test("a bare CR line is not an empty line", () => {
    for (const mode of CRLF_MODES) {
      assert.deepEqual(decodeChunks(mode, ["A: 1\r\n\rB: 2\r\n.\r\n"]).headersEnd, [], mode);
    }
  });
});

describe("zero copy", () => {
  /** Clean CRLF lines filling exactly `size` bytes. */
  function cleanText(size: number): Buffer {
    const line = "The quick brown fox jumps over the lazy dog. 0123456789 abcdefghijklmnopqrstuvw\r\n";
    const text = line.repeat(Math.ceil(size / line.length)).slice(0, size - 2);
    return Buffer.from(`${text}\r\n`, "latin1");
  }

  function sharesMemory(part: Buffer, input: Buffer, offset: number): void {
    assert.equal(part.buffer, input.buffer, "same ArrayBuffer");
    assert.equal(part.byteOffset, input.byteOffset + offset, "at the same place");
  }

  for (const mode of CRLF_MODES) {
    test(`${mode}: a clean 64 KiB chunk is emitted as one subarray of the input`, () => {
      const input = cleanText(64 * 1024);
      const emitted: Buffer[] = [];
      const decoder = new DataDecoder(mode, (chunk) => emitted.push(chunk));
      assert.equal(decoder.read(input, 0), input.length);
      assert.equal(decoder.stop, BodyStop.NeedMore);
      assert.equal(emitted.length, 1);
      const [part] = emitted as [Buffer];
      assert.equal(part.length, input.length);
      sharesMemory(part, input, 0);
    });

    test(`${mode}: a chunk ending mid-line, a stuffed dot and the end stay subarrays`, () => {
      const clean = cleanText(4096);
      const input = Buffer.concat([clean, bytes("..dotted\r\ntail\r\n.\r\n")]);
      const emitted: Buffer[] = [];
      const decoder = new DataDecoder(mode, (chunk) => emitted.push(chunk));
      assert.equal(decoder.read(input, 0), input.length);
      assert.equal(decoder.stop, BodyStop.End);
      assert.equal(emitted.length, 2, "before and after the stuffed dot");
      sharesMemory(emitted[0] as Buffer, input, 0);
      assert.equal(emitted[0]?.length, clean.length);
      sharesMemory(emitted[1] as Buffer, input, clean.length + 1);
      assert.equal(emitted[1]?.toString("latin1"), ".dotted\r\ntail\r\n");

      const partial = Buffer.concat([clean, bytes("no line end yet")]);
      const more: Buffer[] = [];
      const second = new DataDecoder(mode, (chunk) => more.push(chunk));
      assert.equal(second.read(partial, 0), partial.length);
      assert.equal(more.length, 1);
      sharesMemory(more[0] as Buffer, partial, 0);
    });
  }
});

describe("linear cost: each byte is searched at most once for LF and once for CR", () => {
  /**
   * `text` as a Buffer whose indexOf counts the bytes it looks at (up to the match, or to the end), so
   * that a search repeated over the rest of the input shows without timing anything.
   */
  function counted(text: string): { input: Buffer; scanned: () => number } {
    let scanned = 0;
    const input = bytes(text);
    const searchOf = Buffer.prototype.indexOf;
    Object.defineProperty(input, "indexOf", {
      value(this: Buffer, value: number, from: number) {
        const found = searchOf.call(this, value, from);
        scanned += (found === -1 ? this.length : found + 1) - from;
        return found;
      },
    });
    return { input, scanned: () => scanned };
  }

  const LINES = 20_000;
  const messages: Record<string, string> = {
    "bare LFs": `${"x\n".repeat(LINES)}\r\n.\r\n`,
    "bare CRs": `${"x\r".repeat(LINES)}\r\n.\r\n`,
    "bare CRs, then one LF": `${"x\r".repeat(LINES)}\n\r\n.\r\n`,
    "CRLF lines": `${"x\r\n".repeat(LINES)}.\r\n`,
  };
  for (const mode of CRLF_MODES) {
    for (const [shape, text] of Object.entries(messages)) {
      test(`${mode}: ${shape}`, () => {
        const { input, scanned } = counted(text);
        const decoder = new DataDecoder(mode, () => {});
        let pos = 0;
        do pos = decoder.read(input, pos);
        while (decoder.stop === BodyStop.HeadersEnd);
        assert.equal(decoder.stop, BodyStop.End);
        assert.equal(pos, input.length);
        // Before: a message of 40 KB of bare LFs scanned ~400 MB looking for a CR (one scan per line).
        assert.ok(
          scanned() <= 2 * input.length,
          `${scanned()} bytes scanned for a ${input.length}-byte input`,
        );
      });
    }
  }
});
