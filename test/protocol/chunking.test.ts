/** CHUNKING / BDAT and BINARYMIME (RFC 3030), and the DSN parameters (RFC 3461), as transcripts. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BodyStop } from "../../src/protocol/body-reader.js";
import { ChunkReader } from "../../src/protocol/chunking.js";
import { SmtpError } from "../../src/protocol/errors.js";
import { openSession } from "../helpers/session-harness.js";

const ACCEPTED = "250 2.0.0 Ok: message accepted\r\n";

async function ready(config = {}, hooks = {}) {
  const t = await openSession({ config: { chunking: true, ...config }, hooks });
  await t.send("EHLO c\r\n");
  assert.equal(
    await t.send("MAIL FROM:<a@x.test>\r\n", "RCPT TO:<b@y.test>\r\n"),
    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n",
  );
  return t;
}

describe("ChunkReader", () => {
  /** Feeds `chunks` (sizes from the chunk list) split into `pieces`, as the session does. */
  function readAll(message: string, cut: number) {
    const out: Buffer[] = [];
    const reader = new ChunkReader((bytes) => out.push(Buffer.from(bytes)));
    const bytes = Buffer.from(message, "latin1");
    reader.startChunk(bytes.length);
    let headersAt = -1;
    let emittedAtHeaders = -1;
    for (const piece of [bytes.subarray(0, cut), bytes.subarray(cut)]) {
      let pos = 0;
      while (pos < piece.length || reader.stop === BodyStop.HeadersEnd) {
        pos = reader.read(piece, pos);
        if (reader.stop === BodyStop.HeadersEnd) {
          headersAt = 1;
          emittedAtHeaders = Buffer.concat(out).length;
          continue;
        }
        if (reader.stop !== BodyStop.NeedMore) break;
        if (pos >= piece.length) break;
      }
    }
    reader.finish();
    return { data: Buffer.concat(out).toString("latin1"), headersAt, emittedAtHeaders };
  }

  test("the header block ends before its empty line, wherever the input is cut", () => {
    const message = "A: 1\r\nB: 2\r\n\r\nbody\r\n";
    for (let cut = 0; cut <= message.length; cut++) {
      const r = readAll(message, cut);
      assert.equal(r.data, message, `cut ${cut}`);
      assert.equal(r.emittedAtHeaders, 12, `cut ${cut}: headers end after "B: 2\\r\\n"`);
    }
  });

  test("a message starting with an empty line ends its headers at 0; none without an empty line", () => {
    assert.equal(readAll("\r\nbody", 1).emittedAtHeaders, 0);
    assert.equal(readAll("A: 1\r\nB: 2\r\n", 7).headersAt, -1);
    assert.equal(readAll("A: 1\r\n\rX", 7).data, "A: 1\r\n\rX", "a CR that is not an empty line is kept");
    assert.equal(readAll("A: 1\r\n\r", 7).data, "A: 1\r\n\r", "a CR held at the very end is kept");
  });
});

describe("BDAT", () => {
  test("EHLO offers CHUNKING and BINARYMIME when on, DSN when on", async () => {
    const t = await openSession({ config: { chunking: true, dsn: true } });
    const ehlo = await t.send("EHLO c\r\n");
    assert.match(ehlo, /250-CHUNKING\r\n250-BINARYMIME\r\n250-DSN\r\n/);
    const off = await openSession();
    assert.doesNotMatch(await off.send("EHLO c\r\n"), /CHUNKING|BINARYMIME|DSN/);
  });

  test("one LAST chunk is the whole message, octet for octet, with no dot or line-end rules", async () => {
    const t = await ready();
    const body = "Subject: x\r\n\r\n.\r\n..\r\nbare\nLF\r\n.\r\nMAIL FROM:<evil@x.test>\r\n";
    assert.equal(await t.send(`BDAT ${body.length} LAST\r\n${body}`), ACCEPTED);
    assert.equal(t.messages[0]?.data.toString("latin1"), body);
  });

  test("pipelined chunks are answered in order, and BDAT 0 LAST ends the message", async () => {
    const t = await ready();
    const before = t.written.length;
    assert.equal(
      await t.send("BDAT 3\r\nabcBDAT 2\r\ndeBDAT 0 LAST\r\n"),
      `250 2.0.0 Ok: 3 octets received\r\n250 2.0.0 Ok: 2 octets received\r\n${ACCEPTED}`,
    );
    assert.equal(t.written.length, before + 1, "one write");
    assert.equal(t.messages[0]?.data.toString(), "abcde");
  });

  test("a chunk split over many reads, one byte at a time", async () => {
    const t = await ready();
    const body = "Subject: split\r\n\r\nhello\r\n";
    const wire = `BDAT ${body.length} LAST\r\n${body}`;
    const replies = await t.send(...[...wire].map((c) => c));
    assert.equal(replies, ACCEPTED);
    assert.equal(t.messages[0]?.data.toString(), body);
  });

  test("BDAT 0 LAST alone is an empty message", async () => {
    const t = await ready();
    assert.equal(await t.send("BDAT 0 LAST\r\n"), ACCEPTED);
    assert.equal(t.messages[0]?.data.length, 0);
  });

  test("a refused BDAT still consumes its octets: they never run as commands", async () => {
    const t = await openSession({ config: { chunking: true } });
    await t.send("EHLO c\r\n");
    assert.equal(
      await t.send("BDAT 6\r\nQUIT\r\nNOOP\r\n"),
      "503 5.5.1 Error: need RCPT command\r\n250 2.0.0 Ok\r\n",
    );
    assert.equal(t.closed, false);
  });

  test("bad BDAT syntax: 521 and the session ends (where the chunk ends is unknown)", async () => {
    for (const command of ["BDAT", "BDAT -1", "BDAT 5 FIRST"]) {
      const t = await ready();
      assert.equal(await t.send(`${command}\r\n`), "521 5.5.4 Syntax: BDAT size [LAST]\r\n");
      assert.equal(t.closed, true);
    }
  });

  test("BDAT with CHUNKING off: 502, and its octets are skipped", async () => {
    const t = await openSession();
    await t.send("EHLO c\r\n");
    assert.equal(
      await t.send("BDAT 6\r\nQUIT\r\nNOOP\r\n"),
      "502 5.5.1 Command not implemented\r\n250 2.0.0 Ok\r\n",
    );
  });

  test("DATA after BDAT in one transaction: 503; DATA with BODY=BINARYMIME: 503", async () => {
    const t = await ready();
    assert.equal(await t.send("BDAT 2\r\nab"), "250 2.0.0 Ok: 2 octets received\r\n");
    assert.equal(await t.send("DATA\r\n"), "503 5.5.1 Error: DATA after BDAT in one transaction\r\n");
    assert.equal(await t.send("RSET\r\n"), "250 2.0.0 Ok\r\n");
    await t.send("MAIL FROM:<a@x.test> BODY=BINARYMIME\r\nRCPT TO:<b@y.test>\r\n");
    assert.equal(t.ctx.envelope.encodingBody, "binarymime");
    assert.equal(await t.send("DATA\r\n"), "503 5.5.1 Error: BODY=BINARYMIME requires BDAT\r\n");
    const binary = Buffer.from([0, 1, 2, 13, 10, 46, 13, 10, 255]);
    assert.equal(await t.send(`BDAT ${binary.length} LAST\r\n`, binary), ACCEPTED);
    assert.deepEqual(t.messages[0]?.data, binary);
  });

  test("BODY=BINARYMIME is refused when CHUNKING is off", async () => {
    const t = await openSession();
    await t.send("EHLO c\r\n");
    assert.equal(
      await t.send("MAIL FROM:<a@x.test> BODY=BINARYMIME\r\n"),
      "501 5.5.4 Error: BODY must be 7BIT or 8BITMIME\r\n",
    );
  });

  test("RCPT after a chunk: 503; RSET between chunks drops the message", async () => {
    const t = await ready();
    await t.send("BDAT 2\r\nab");
    assert.equal(await t.send("RCPT TO:<c@y.test>\r\n"), "503 5.5.1 Error: RCPT after BDAT\r\n");
    assert.equal(await t.send("RSET\r\n"), "250 2.0.0 Ok\r\n");
    assert.equal(await t.send("BDAT 2 LAST\r\ncd"), "503 5.5.1 Error: need RCPT command\r\n");
    assert.equal(t.messages.length, 0);
  });

  test("SIZE is enforced across chunks: the chunk that overflows gets 552 and ends the transaction", async () => {
    const t = await ready({ maxMessageSize: 10 });
    assert.equal(
      await t.send("BDAT 6\r\nabcdefBDAT 6\r\nghijklBDAT 1 LAST\r\nm"),
      "250 2.0.0 Ok: 6 octets received\r\n552 5.3.4 Error: message exceeds fixed maximum message size\r\n503 5.5.1 Error: need RCPT command\r\n",
    );
    assert.equal(t.messages.length, 0);
    assert.equal(await t.send("NOOP\r\n"), "250 2.0.0 Ok\r\n", "the octets of every chunk were consumed");
  });

  test("the same hooks as DATA: start, headers (split across chunks), streaming", async () => {
    const streamed: Buffer[] = [];
    const t = await ready(
      {},
      {
        onMessageDataStart: (ctx: { message: { write(b: string): void } }) =>
          ctx.message.write("Received: x\r\n"),
        onMessageDataHeaders: (ctx: { message: { write(b: string): void } }) => ctx.message.write("X: 2\r\n"),
        onMessageStream: async (_ctx: unknown, stream: AsyncIterable<Buffer>) => {
          for await (const chunk of stream) streamed.push(chunk);
          return "Ok: streamed";
        },
      },
    );
    assert.equal(await t.send("BDAT 7\r\nA: 1\r\n\r"), "250 2.0.0 Ok: 7 octets received\r\n");
    assert.equal(await t.send("BDAT 5 LAST\r\n\nbody"), "250 2.0.0 Ok: streamed\r\n");
    assert.equal(Buffer.concat(streamed).toString(), "Received: x\r\nA: 1\r\nX: 2\r\n\r\nbody");
  });

  test("a client that goes away mid-chunk: the stream consumer sees an error, nothing is delivered", async () => {
    let failure: unknown = null;
    const t = await ready(
      {},
      {
        onMessageStream: async (_ctx: unknown, stream: AsyncIterable<Buffer>) => {
          try {
            for await (const _ of stream);
          } catch (error) {
            failure = error;
            throw error;
          }
        },
      },
    );
    await t.send("BDAT 100 LAST\r\nonly part of it");
    t.session.end();
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(failure instanceof Error);
    assert.equal(t.messages.length, 0);
  });

  test("with PIPELINING off, the chunk after the BDAT line is no protocol violation", async () => {
    const t = await ready({ pipelining: false });
    assert.equal(await t.send("BDAT 5 LAST\r\nhello"), ACCEPTED);
  });

  test("LMTP: one reply per recipient after BDAT ... LAST", async () => {
    const t = await openSession({
      config: { chunking: true, lmtp: true },
      hooks: { onMessageData: () => [undefined, new SmtpError(452, "Mailbox full", "4.2.2")] },
    });
    await t.send("LHLO c\r\n");
    await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<one@y.test>\r\nRCPT TO:<two@y.test>\r\n");
    assert.equal(
      await t.send("BDAT 3\r\nabcBDAT 3 LAST\r\ndef"),
      "250 2.0.0 Ok: 3 octets received\r\n250 2.0.0 <one@y.test> Ok\r\n452 4.2.2 Mailbox full\r\n",
    );
  });
});

describe("DSN parameters", () => {
  async function dsnSession() {
    const t = await openSession({ config: { dsn: true } });
    await t.send("EHLO c\r\n");
    return t;
  }

  test("RET, ENVID, NOTIFY and ORCPT are decoded into the envelope", async () => {
    const t = await dsnSession();
    assert.equal(
      await t.send(
        "MAIL FROM:<a@x.test> RET=hdrs ENVID=QQ+2B1\r\nRCPT TO:<b@y.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+40y.test\r\nRCPT TO:<c@y.test> NOTIFY=NEVER\r\n",
      ),
      "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n",
    );
    const { envelope } = t.ctx;
    assert.deepEqual(envelope.dsn, { ret: "HDRS", envid: "QQ+1" });
    assert.deepEqual(envelope.rcptDsn, [
      { notify: ["SUCCESS", "FAILURE"], orcpt: { type: "rfc822", address: "b@y.test" } },
      { notify: ["NEVER"], orcpt: null },
    ]);
  });

  test("CR/LF smuggled through xtext, bad values and DSN with the extension off are refused", async () => {
    const t = await dsnSession();
    const envid = "501 5.5.4 Error: invalid ENVID value\r\n";
    assert.equal(await t.send("MAIL FROM:<a@x.test> ENVID=ab+0D+0Acd\r\n"), envid);
    assert.equal(await t.send("MAIL FROM:<a@x.test> ENVID=ab+0a\r\n"), envid, "hex digits are upper case");
    assert.equal(await t.send("MAIL FROM:<a@x.test> ENVID=+\r\n"), envid);
    assert.equal(await t.send(`MAIL FROM:<a@x.test> ENVID=${"x".repeat(101)}\r\n`), envid);
    assert.equal(
      await t.send("MAIL FROM:<a@x.test> RET=ALL\r\n"),
      "501 5.5.4 Error: RET must be FULL or HDRS\r\n",
    );
    await t.send("MAIL FROM:<a@x.test>\r\n");
    assert.equal(
      await t.send("RCPT TO:<b@y.test> NOTIFY=NEVER,SUCCESS\r\n"),
      "501 5.5.4 Error: NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY\r\n",
    );
    assert.equal(
      await t.send("RCPT TO:<b@y.test> ORCPT=b@y.test\r\n"),
      "501 5.5.4 Error: ORCPT must be addr-type;address\r\n",
    );
    assert.equal(
      await t.send("RCPT TO:<b@y.test> ORCPT=rfc822;a+0Db\r\n"),
      "501 5.5.4 Error: invalid ORCPT value\r\n",
    );
    const off = await openSession();
    await off.send("EHLO c\r\n");
    assert.equal(
      await off.send("MAIL FROM:<a@x.test> RET=FULL\r\n"),
      "555 5.5.4 Unsupported parameter RET\r\n",
    );
    await off.send("MAIL FROM:<a@x.test>\r\n");
    assert.equal(
      await off.send("RCPT TO:<b@y.test> NOTIFY=NEVER\r\n"),
      "555 5.5.4 Unsupported parameter NOTIFY\r\n",
    );
  });
});

describe("bufferMessagesUpTo with BDAT", () => {
  /** A session whose onMessageStream records what it read; onMessageData records whole messages. */
  async function bounded(limit: number) {
    const streamed: string[] = [];
    const whole: string[] = [];
    const t = await ready(
      { bufferMessagesUpTo: limit },
      {
        onMessageStream: async (_ctx: unknown, stream: AsyncIterable<Buffer>) => {
          let text = "";
          for await (const chunk of stream) text += chunk.toString("latin1");
          streamed.push(text);
        },
        onMessageData: (ctx: { message: { data: Buffer } }) => {
          if (ctx.message.data.length > 0) whole.push(ctx.message.data.toString("latin1"));
        },
      },
    );
    return { t, streamed, whole };
  }

  test("chunks that end within the bound: one whole message, no stream", async () => {
    const { t, streamed, whole } = await bounded(10);
    assert.equal(
      await t.send("BDAT 4\r\nabcdBDAT 6 LAST\r\nefghij"),
      `250 2.0.0 Ok: 4 octets received\r\n${ACCEPTED}`,
    );
    assert.deepEqual({ streamed, whole }, { streamed: [], whole: ["abcdefghij"] });
  });

  test("a chunk that passes the bound: streamed from then on, the chunks before it first", async () => {
    const { t, streamed, whole } = await bounded(10);
    assert.equal(await t.send("BDAT 6\r\nabcdef"), "250 2.0.0 Ok: 6 octets received\r\n");
    assert.equal(await t.send("BDAT 5\r\nghijk"), "250 2.0.0 Ok: 5 octets received\r\n");
    assert.equal(await t.send("BDAT 3 LAST\r\nlmn"), ACCEPTED);
    assert.deepEqual({ streamed, whole }, { streamed: ["abcdefghijklmn"], whole: [] });
  });
});
