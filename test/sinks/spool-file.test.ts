/**
 * The spool's file format read back (src/sinks/spool-file.ts): what the spool writes comes back whole, and
 * a file planted in the spool or damaged there, whose X-Mailgate-Spool line carries facts of the wrong
 * types or an id with a line break, is refused with a sentence saying what is wrong (the forwarder then
 * moves it to refused/ instead of handing those facts to the sink). The same check guards consumers that
 * read a Mailgate-Envelope header.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { decodeMailgateEnvelope, type SessionFacts } from "../../src/index.js";
import { SinkUnavailable } from "../../src/sinks/sink-error.js";
import { readSpooledMessage, spoolHeader } from "../../src/sinks/spool-file.js";
import { WholeMessage } from "../../src/store/whole-message.js";
import { silentLogger, waitFor } from "../helpers/clients.js";
import { spoolFixture } from "./spool-helpers.js";

const FACTS: SessionFacts = {
  clientAddress: "192.0.2.7",
  clientPort: 41234,
  clientName: "client.example",
  helo: "client.example",
  tls: { protocol: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384" },
  authenticatedAs: null,
  smtputf8: true,
  body: "8bitmime",
};

const BODY = Buffer.from("Subject: spooled\r\n\r\nhello\r\n");

/** A file as the spool writes one: trace headers, the X-Mailgate-Spool line, the message. */
function spooledFile(spoolLine: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from("Return-Path: <sender@example.org>\r\nX-Envelope-To: <rcpt@example.com>\r\n"),
    spoolLine,
    BODY,
  ]);
}

/** An X-Mailgate-Spool line with `facts` as its JSON, as someone other than the spool could write it. */
function plantedLine(facts: unknown): Buffer {
  return Buffer.from(`X-Mailgate-Spool: ${JSON.stringify(facts)}\r\n`);
}

async function readBack(t: { after(fn: () => Promise<void>): void }, file: Buffer) {
  const directory = await mkdtemp(join(tmpdir(), "mailgate-spool-file-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  const path = join(directory, "message");
  await writeFile(path, file);
  return readSpooledMessage(path);
}

async function bodyOf(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

test("what the spool writes comes back: the envelope, the id, the session facts and the bytes", async (t) => {
  const line = spoolHeader({
    from: "sender@example.org",
    to: ["rcpt@example.com"],
    id: "ID1",
    session: FACTS,
  });
  const spooled = await readBack(t, spooledFile(line));
  assert.deepEqual(spooled.envelope, {
    from: "sender@example.org",
    to: ["rcpt@example.com"],
    id: "ID1",
    session: FACTS,
  });
  assert.deepEqual(await bodyOf(spooled.body), BODY);

  const withoutFacts = await readBack(t, spooledFile(plantedLine({ id: "ID2", session: null })));
  assert.equal(withoutFacts.envelope.session, undefined);
});

test("a planted file with facts of the wrong types or a bad id is not a spooled message", async (t) => {
  const planted: [string, unknown, RegExp][] = [
    ["a port that is a string", { ...FACTS, clientPort: "25" }, /clientPort is not a port number/],
    ["a port out of range", { ...FACTS, clientPort: 70000 }, /clientPort/],
    ["a HELO that is an object", { ...FACTS, helo: { toString: "x" } }, /helo is not a string/],
    ["TLS facts without a cipher", { ...FACTS, tls: { protocol: "TLSv1.3" } }, /tls is not/],
    ["TLS facts that are a string", { ...FACTS, tls: "TLSv1.3" }, /tls is not null or an object/],
    ["an AUTH identity that is a number", { ...FACTS, authenticatedAs: 1 }, /authenticatedAs/],
    ["SMTPUTF8 as a string", { ...FACTS, smtputf8: "yes" }, /smtputf8 is not a boolean/],
    ["an unknown BODY", { ...FACTS, body: "base64" }, /body is not one of/],
    ["a missing member", { ...FACTS, clientName: undefined }, /clientName is not a string/],
    ["facts that are an array", [FACTS], /session facts are not an object/],
  ];
  for (const [what, session, why] of planted) {
    await assert.rejects(
      readBack(t, spooledFile(plantedLine({ id: "ID", session }))),
      (error: Error) => /^Not a spooled message/.test(error.message) && why.test(error.message),
      what,
    );
  }
  for (const [what, facts] of [
    ["an id with a line break", { id: "ID\r\nNats-Expected-Stream: other", session: null }],
    ["an empty id", { id: "", session: null }],
    ["an id that is a number", { id: 7, session: null }],
    ["a line that is not an object", "ID"],
  ] as const) {
    await assert.rejects(readBack(t, spooledFile(plantedLine(facts))), /^Error: Not a spooled message/, what);
  }
  await assert.rejects(
    readBack(t, spooledFile(Buffer.from("X-Mailgate-Spool: {not json\r\n"))),
    /is not JSON/,
  );
});

test("a planted file goes to refused/ and is never handed to the sink", async (t) => {
  const fixture = await spoolFixture(t);
  await mkdir(join(fixture.directory, "new"), { recursive: true });
  const name = "1700000000.M1P1Q1.planted";
  await writeFile(
    join(fixture.directory, "new", name),
    spooledFile(plantedLine({ id: "PLANTED", session: { ...FACTS, clientPort: "25\r\nX: y" } })),
  );
  const delivered: string[] = [];
  const spool = await fixture.open(
    {
      async deliver(envelope) {
        delivered.push(envelope.id ?? "");
        return { id: envelope.id ?? "", location: "test", size: 0 };
      },
    },
    { logger: silentLogger },
  );
  await waitFor(() => spool.stats.refused === 1, "the planted file to be moved to refused/", 5000);
  assert.deepEqual(delivered, []);
  assert.deepEqual(await readdir(join(fixture.directory, "refused", "new")), [name]);
});

test("a consumer refuses a Mailgate-Envelope whose session facts have the wrong types", () => {
  const encode = (session: unknown) =>
    Buffer.from(JSON.stringify({ from: "a@example.org", to: ["b@example.com"], session })).toString(
      "base64url",
    );
  assert.deepEqual(decodeMailgateEnvelope(encode(FACTS)).session, FACTS);
  assert.equal(decodeMailgateEnvelope(encode(null)).session, null);
  assert.throws(() => decodeMailgateEnvelope(encode({ ...FACTS, smtputf8: 1 })), /smtputf8 is not a boolean/);
  assert.throws(() => decodeMailgateEnvelope(encode("facts")), /session facts are not an object/);
});

test("the spool refuses at once an id it could not forward: nothing is stored or sent", async (t) => {
  const fixture = await spoolFixture(t);
  const delivered: string[] = [];
  const spool = await fixture.open({
    async deliver(envelope) {
      delivered.push(envelope.id ?? "");
      return { id: envelope.id ?? "", location: "test", size: 0 };
    },
  });
  for (const id of ["line\r\nbreak", "tab\there", ""]) {
    await assert.rejects(
      spool.deliver({ from: "a@example.org", to: ["b@example.com"], id }, new WholeMessage(BODY)),
      /Cannot spool message id/,
    );
  }
  assert.deepEqual(delivered, []);
  assert.deepEqual(await readdir(join(fixture.directory, "new")), []);
});

test("a WholeMessage the sink cannot take now is spooled byte-exact, then forwarded with its id", async (t) => {
  const fixture = await spoolFixture(t);
  let up = false;
  const received: { id: string; bytes: Buffer; whole: boolean }[] = [];
  const spool = await fixture.open(
    {
      async deliver(envelope, message) {
        if (!up) throw new SinkUnavailable("test sink", "down");
        const chunks: Buffer[] = [];
        for await (const chunk of message) chunks.push(chunk);
        received.push({
          id: envelope.id ?? "",
          bytes: Buffer.concat(chunks),
          whole: message instanceof WholeMessage,
        });
        return { id: envelope.id ?? "", location: "test", size: 0 };
      },
    },
    { retryDelay: { min: 20, max: 100 } },
  );
  const receipt = await spool.deliver(
    { from: "a@example.org", to: ["b@example.com"], id: "WHOLE1", session: FACTS },
    new WholeMessage(BODY),
  );
  assert.equal(receipt.id, "WHOLE1");
  assert.equal(spool.stats.spooled, 1);
  up = true;
  await waitFor(() => received.length === 1, "the spooled message to be forwarded", 5000);
  assert.deepEqual(received[0]?.id, "WHOLE1");
  assert.deepEqual(received[0]?.bytes, BODY);
  // Straight through while the sink is up: the sink gets the WholeMessage itself, no tee in between.
  await spool.deliver({ from: "a@example.org", to: ["b@example.com"], id: "WHOLE2" }, new WholeMessage(BODY));
  assert.deepEqual(
    received.map((r) => [r.id, r.whole]),
    [
      ["WHOLE1", false],
      ["WHOLE2", true],
    ],
  );
});
