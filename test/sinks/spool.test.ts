/**
 * SinkSpool in front of HttpSink, through real SMTP sessions, with an endpoint the test switches between
 * accepting, refusing and resetting: what is spooled and what is not, the bounds, the envelope kept
 * through the spool, a large message the sink failed half-way, ordering, and messages the sink keeps
 * refusing (moved to refused/).
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { HttpSink, type HttpSinkOptions, parseEnvelopeHeaders } from "../../src/index.js";
import { freePort, waitFor } from "../helpers/clients.js";
import { SECRET } from "./http-helpers.js";
import { message } from "./sink-load.js";
import { ehloClient, queuedId, sendOne, startSinkServer } from "./sink-server.js";
import { type Endpoint, filesIn, keptLogger, spoolFixture, startEndpoint } from "./spool-helpers.js";

const FAST_RETRY = { retryDelay: { min: 20, max: 100 } };

function sinkTo(url: string, options: Partial<HttpSinkOptions> = {}): HttpSink {
  return new HttpSink({ url, secret: SECRET, requestTimeout: 400, maxSockets: 4, ...options });
}

/** Sends each message in one session; returns the replies. */
async function sendAll(port: number, messages: Buffer[], to = ["rcpt@example.com"]): Promise<string[]> {
  const client = await ehloClient(port);
  try {
    const replies: string[] = [];
    for (const message of messages) replies.push(await sendOne(client, "sender@example.org", to, message));
    return replies;
  } finally {
    client.close();
  }
}

function messages(prefix: string, count: number): Buffer[] {
  return Array.from({ length: count }, (_, index) => message(`${prefix} ${index}`));
}

/** The ids the 250s named, failing on any other reply. */
function acceptedIds(replies: string[]): string[] {
  return replies.map((reply) => queuedId(reply) ?? assert.fail(`expected a 250, got ${reply}`));
}

function acceptedBodies(endpoint: Endpoint): Map<string, Buffer> {
  return new Map(endpoint.accepted.map(({ id, body }) => [id, body]));
}

describe("SinkSpool", () => {
  test("the sink unreachable: messages are spooled (250) and forwarded in order with their ids", async (t) => {
    const endpoint = await startEndpoint(t);
    const fixture = await spoolFixture(t);
    const spool = await fixture.open(sinkTo(endpoint.url), { ...FAST_RETRY, forwardConcurrency: 1 });
    const port = await startSinkServer(t, spool);

    const direct = acceptedIds(await sendAll(port, messages("direct", 2)));
    assert.deepEqual(
      endpoint.accepted.map(({ id }) => id),
      direct,
    );
    assert.equal(spool.stats.spooled, 0);

    endpoint.mode = "reset";
    const sent = messages("spooled", 6);
    const spooled = acceptedIds(await sendAll(port, sent));
    assert.equal(spool.stats.spooled, 6);
    assert.equal(spool.stats.sink, "down");
    assert.equal(
      (await filesIn(fixture.directory, "new")).length,
      6,
      "each spooled message is a file in new/",
    );

    endpoint.mode = "accept";
    await waitFor(() => spool.stats.messages === 0, "the spool to be forwarded", 5000);
    assert.equal(spool.stats.sink, "up");
    assert.equal(spool.stats.forwarded, 6);
    assert.deepEqual(
      endpoint.accepted.slice(2).map(({ id }) => id),
      spooled,
      "forwarded oldest first, each with the id its 250 named",
    );
    const bodies = acceptedBodies(endpoint);
    for (const [index, id] of spooled.entries()) {
      assert.deepEqual(bodies.get(id), sent[index], `message ${id} byte-exact`);
    }
    assert.deepEqual(await filesIn(fixture.directory, "new"), []);
    assert.deepEqual(await filesIn(fixture.directory, "tmp"), []);

    // Back to the sink directly once it answers again.
    const after = acceptedIds(await sendAll(port, messages("after", 2)));
    assert.equal(spool.stats.spooled, 6);
    assert.deepEqual(
      endpoint.accepted.slice(-2).map(({ id }) => id),
      after,
    );
  });

  test("a refusal by the sink is passed through (451), never spooled", async (t) => {
    const endpoint = await startEndpoint(t);
    endpoint.mode = "refuse";
    const fixture = await spoolFixture(t);
    const spool = await fixture.open(sinkTo(endpoint.url), FAST_RETRY);
    const port = await startSinkServer(t, spool);

    const replies = await sendAll(port, messages("refused", 3));
    for (const reply of replies) assert.match(reply, /^451 4\.3\.0 /);
    assert.equal(endpoint.turnedAway, 3, "each message was offered to the sink");
    assert.equal(spool.stats.spooled, 0);
    assert.equal(spool.stats.sink, "up");
    assert.deepEqual(await filesIn(fixture.directory, "new"), []);
  });

  test("the bounds: past maxMessages or maxBytes a message gets 451, with one log line", async (t) => {
    const unreachable = `http://127.0.0.1:${await freePort()}/inbound`;
    const fixture = await spoolFixture(t);
    const log = keptLogger();
    const byCount = await fixture.open(sinkTo(unreachable), { ...FAST_RETRY, maxMessages: 3, logger: log });
    const port = await startSinkServer(t, byCount);

    const replies = await sendAll(port, messages("bounded", 5));
    assert.equal(acceptedIds(replies.slice(0, 3)).length, 3);
    for (const reply of replies.slice(3)) assert.match(reply, /^451 4\.3\.0 /);
    assert.deepEqual(
      { messages: byCount.stats.messages, full: byCount.stats.full },
      { messages: 3, full: true },
    );
    const full = log.lines.filter((line) => /full \(maxMessages 3, maxBytes \d+\)/.test(line));
    assert.equal(full.length, 1, `one line when the spool fills up: ${log.lines.join("\n")}`);
    assert.match(
      full[0] as string,
      /^WARN Spool .* \(3 messages, \d+ bytes\): full .* answering 451 4\.3\.0/,
    );
    assert.deepEqual(await filesIn(fixture.directory, "tmp"), [], "nothing left of the refused writes");
    await byCount.close();

    // A second spool on the same directory, bounded by bytes: the 3 messages already there and one more
    // 2 KB message fit in what they hold and 3,000 bytes more, the next does not.
    const held = byCount.stats.bytes;
    const bySize = await fixture.open(sinkTo(unreachable), { ...FAST_RETRY, maxBytes: held + 3000 });
    assert.deepEqual(
      [bySize.stats.messages, bySize.stats.bytes],
      [3, held],
      "what was spooled before counts",
    );
    const port2 = await startSinkServer(t, bySize);
    const [fits, tooMany] = await sendAll(port2, messages("by size", 2));
    assert.ok(queuedId(fits as string), fits);
    assert.match(tooMany as string, /^451 4\.3\.0 /);
    assert.equal(bySize.stats.messages, 4);
  });

  test("the envelope survives the spool: SMTPUTF8 addresses, every recipient, the session facts", async (t) => {
    const endpoint = await startEndpoint(t);
    const fixture = await spoolFixture(t);
    const spool = await fixture.open(sinkTo(endpoint.url), FAST_RETRY);
    const port = await startSinkServer(t, spool);
    const from = "jörg@bücher.example";
    const to = ["δοκιμή@παράδειγμα.δοκιμή", "用户@例子.广告", "plain@example.com"];
    const client = await ehloClient(port);
    t.after(() => client.close());

    const direct = await sendOne(client, from, to, message("direct"), { smtputf8: true });
    endpoint.mode = "reset";
    const body = message("spooled");
    const spooled = await sendOne(client, from, to, body, { smtputf8: true });
    assert.equal(spool.stats.spooled, 1);
    endpoint.mode = "accept";
    await waitFor(() => spool.stats.messages === 0, "the spool to be forwarded", 5000);

    const [first, second] = endpoint.accepted;
    assert.equal(first?.id, queuedId(direct));
    assert.equal(second?.id, queuedId(spooled));
    assert.deepEqual(
      second?.envelope,
      first?.envelope,
      "the same envelope and session facts as sent directly",
    );
    assert.equal(second?.envelope.from, from);
    assert.deepEqual(second?.envelope.to, to);
    assert.equal(second?.envelope.session?.smtputf8, true);
    assert.equal(second?.envelope.session?.helo, "client.test");
    assert.deepEqual(second?.body, body);
  });

  test("a large message the sink fails half-way is spooled byte-exact (memory, then the spill file)", async (t) => {
    const endpoint = await startEndpoint(t);
    const fixture = await spoolFixture(t);
    // The sink streams (bufferMessagesUpTo 0); the spool keeps 16 KB in memory, the rest in tmp/.
    const sink = sinkTo(endpoint.url, { bufferMessagesUpTo: 0 });
    const spool = await fixture.open(sink, { ...FAST_RETRY, bufferUpTo: 16 * 1024 });
    const port = await startSinkServer(t, spool);
    const line = `${"0123456789".repeat(7)}abcd\r\n`;
    const big = (name: string) => Buffer.from(`Subject: ${name}\r\n\r\n${line.repeat(6000)}`); // ~450 KB

    const passed = big("passes");
    const [direct] = acceptedIds(await sendAll(port, [passed]));
    assert.deepEqual(acceptedBodies(endpoint).get(direct as string), passed);
    assert.deepEqual(
      await filesIn(fixture.directory, "tmp"),
      [],
      "the spill file is removed after a success",
    );

    endpoint.mode = "reset-midway";
    const failed = big("reset half-way");
    const [spooled] = acceptedIds(await sendAll(port, [failed]));
    assert.ok(endpoint.turnedAway >= 1, "the sink had sent part of it");
    assert.equal(spool.stats.spooled, 1);
    const [name] = await filesIn(fixture.directory, "new");
    const file = await readFile(join(fixture.directory, "new", name as string));
    const bodyStart = file.indexOf("\r\n", parseEnvelopeHeaders(file).bodyOffset) + 2;
    assert.deepEqual(file.subarray(bodyStart), failed, "the spool file holds the whole message");
    assert.deepEqual(await filesIn(fixture.directory, "tmp"), []);

    endpoint.mode = "accept";
    await waitFor(() => spool.stats.messages === 0, "the spool to be forwarded", 5000);
    assert.deepEqual(acceptedBodies(endpoint).get(spooled as string), failed);
  });

  test("a message the session aborts is not spooled: 552 past the size limit, while the sink is down", async (t) => {
    const endpoint = await startEndpoint(t);
    endpoint.mode = "reset";
    const fixture = await spoolFixture(t);
    const spool = await fixture.open(sinkTo(endpoint.url), { retryDelay: { min: 5000, max: 10_000 } });
    const port = await startSinkServer(t, spool, { maxMessageSize: 4000 });

    const [spooled, tooBig] = await sendAll(port, [message("fits"), Buffer.alloc(6000, "x\r\n")]);
    assert.ok(queuedId(spooled as string), spooled);
    assert.equal(spool.stats.sink, "down", "the second message went straight to the spool");
    assert.match(tooBig as string, /^552 5\.3\.4 /);
    assert.equal(spool.stats.spooled, 1);
    assert.equal((await filesIn(fixture.directory, "new")).length, 1);
    assert.deepEqual(await filesIn(fixture.directory, "tmp"), []);
  });

  test("a spooled message the sink keeps refusing moves to refused/ and the queue goes on", async (t) => {
    const endpoint = await startEndpoint(t);
    const fixture = await spoolFixture(t);
    const log = keptLogger();
    const spool = await fixture.open(sinkTo(endpoint.url), { ...FAST_RETRY, maxRefusals: 2, logger: log });
    const port = await startSinkServer(t, spool);

    endpoint.mode = "reset";
    const ids = acceptedIds(await sendAll(port, messages("refused later", 2)));
    endpoint.mode = "refuse";
    await waitFor(() => spool.stats.refused === 2, "both messages to be moved to refused/", 5000);
    assert.equal(endpoint.turnedAway >= 2 + 4, true, "each was offered maxRefusals times");
    assert.deepEqual({ messages: spool.stats.messages, sink: spool.stats.sink }, { messages: 0, sink: "up" });
    assert.equal((await filesIn(fixture.directory, "refused/new")).length, 2);
    for (const id of ids) {
      assert.ok(
        log.lines.some(
          (line) => line.startsWith("ERROR ") && line.includes(id) && line.includes("refused/new"),
        ),
        `an error line names ${id} and where it went`,
      );
    }

    endpoint.mode = "accept";
    const [next] = acceptedIds(await sendAll(port, [message("next")]));
    assert.equal(endpoint.accepted.at(-1)?.id, next);
  });
});
