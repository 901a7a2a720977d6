/**
 * SinkSpool across restarts: what one spool spooled, the next forwards with the same ids; what a crash
 * left (unfinished files in tmp/, the lock of a dead process) is cleaned up; a live owner keeps the lock;
 * close() while forwards hang on a stalled sink returns within the sink's bound and keeps the messages.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { HttpSink, SinkSpool } from "../../src/index.js";
import { waitFor } from "../helpers/clients.js";
import { SECRET } from "./http-helpers.js";
import { message } from "./sink-load.js";
import { ehloClient, queuedId, sendOne, startSinkServer } from "./sink-server.js";
import { filesIn, keptLogger, spoolFixture, startEndpoint } from "./spool-helpers.js";

const REQUEST_TIMEOUT = 400;
const FAST_RETRY = { retryDelay: { min: 20, max: 100 } };

function sinkTo(url: string): HttpSink {
  return new HttpSink({ url, secret: SECRET, requestTimeout: REQUEST_TIMEOUT, maxSockets: 4 });
}

async function* oneChunk(): AsyncGenerator<Buffer> {
  yield Buffer.from("x\r\n");
}

/** Sends `count` 2 KB messages in one session; returns the ids their 250s named. */
async function spoolSome(port: number, count: number): Promise<string[]> {
  const client = await ehloClient(port);
  try {
    const ids: string[] = [];
    for (let index = 0; index < count; index++) {
      const reply = await sendOne(client, "a@example.org", ["b@example.com"], message(`restart ${index}`));
      ids.push(queuedId(reply) ?? assert.fail(`expected a 250, got ${reply}`));
    }
    return ids;
  } finally {
    client.close();
  }
}

test("a restart resumes the spool: the messages are forwarded with their ids, oldest first", async (t) => {
  const endpoint = await startEndpoint(t);
  const fixture = await spoolFixture(t);
  endpoint.mode = "reset";
  const first = await fixture.open(sinkTo(endpoint.url), FAST_RETRY);
  const ids = await spoolSome(await startSinkServer(t, first), 4);
  await first.close();
  assert.equal((await filesIn(fixture.directory, "new")).length, 4, "close() keeps what is spooled");

  endpoint.mode = "accept";
  const log = keptLogger();
  const second = await fixture.open(sinkTo(endpoint.url), {
    ...FAST_RETRY,
    forwardConcurrency: 1,
    logger: log,
  });
  assert.ok(
    log.lines.includes(`INFO Spool ${fixture.directory}: opened with 4 messages to forward`),
    log.lines.join(),
  );
  await waitFor(() => second.stats.messages === 0, "the resumed spool to be forwarded", 5000);
  assert.deepEqual(
    endpoint.accepted.map(({ id }) => id),
    ids,
  );
  assert.deepEqual(await filesIn(fixture.directory, "new"), []);
});

test("what a crash left is cleaned up: unfinished files in tmp/, the lock of a dead process", async (t) => {
  const endpoint = await startEndpoint(t);
  const fixture = await spoolFixture(t);
  endpoint.mode = "reset";
  const first = await fixture.open(sinkTo(endpoint.url), FAST_RETRY);
  const ids = await spoolSome(await startSinkServer(t, first), 2);
  await first.close();
  // As a crash leaves them: a half-written message, a half-written spill file, the lock of a dead process.
  await writeFile(join(fixture.directory, "tmp", "1700000000.M1P99999Q1R0.host"), "Return-Path: <a@exa");
  await writeFile(join(fixture.directory, "tmp", "spill.99999.1"), "half a message");
  const dead = spawnSync("true").pid as number;
  await writeFile(join(fixture.directory, "mailgate-spool.lock"), `${dead}\n`);

  endpoint.mode = "accept";
  const log = keptLogger();
  const second = await fixture.open(sinkTo(endpoint.url), { ...FAST_RETRY, logger: log });
  assert.ok(
    log.lines.includes(
      `INFO Spool ${fixture.directory}: opened with 2 messages to forward; removed 2 unfinished files from tmp/`,
    ),
    log.lines.join("\n"),
  );
  assert.deepEqual(await filesIn(fixture.directory, "tmp"), []);
  await waitFor(() => second.stats.messages === 0, "the spool to be forwarded", 5000);
  assert.deepEqual(endpoint.accepted.map(({ id }) => id).sort(), [...ids].sort());
});

test("a spool is open in one process at a time", async (t) => {
  const endpoint = await startEndpoint(t);
  const fixture = await spoolFixture(t);
  await fixture.open(sinkTo(endpoint.url));
  await assert.rejects(SinkSpool.open(fixture.directory, sinkTo(endpoint.url)), {
    message: `Cannot open the spool "${fixture.directory}": this process has it open already.`,
  });

  const other = await spoolFixture(t);
  // A live process that is not this one: the parent (the test runner, or the shell).
  await writeFile(join(other.directory, "mailgate-spool.lock"), `${process.ppid}\n`);
  await assert.rejects(SinkSpool.open(other.directory, sinkTo(endpoint.url)), {
    message: new RegExp(`^Cannot open the spool ".*": process ${process.ppid} uses it`),
  });
});

test("close() while forwards hang on a stalled sink: bounded, the sink closed, the messages kept", async (t) => {
  const endpoint = await startEndpoint(t);
  const fixture = await spoolFixture(t);
  endpoint.mode = "reset";
  const sink = sinkTo(endpoint.url);
  const spool = await fixture.open(sink, { retryDelay: { min: 300, max: 300 }, forwardConcurrency: 2 });
  const ids = await spoolSome(await startSinkServer(t, spool), 5);

  endpoint.mode = "stall";
  await waitFor(() => spool.stats.forwarding > 0, "a forward to hang on the stalled endpoint", 5000);
  const started = Date.now();
  await spool.close();
  const took = Date.now() - started;
  assert.ok(took < REQUEST_TIMEOUT + 1000, `close() took ${took} ms`);
  await assert.rejects(
    sink.deliver({ from: "", to: ["x@example.com"] }, oneChunk()),
    /closing/,
    "the sink was closed",
  );
  await assert.rejects(spool.deliver({ from: "", to: ["x@example.com"] }, oneChunk()), /closing/);
  assert.equal((await filesIn(fixture.directory, "new")).length, 5, "every message stays for the next start");

  endpoint.mode = "accept";
  const next = await fixture.open(sinkTo(endpoint.url), FAST_RETRY);
  await waitFor(() => next.stats.messages === 0, "the next spool to forward them", 5000);
  assert.deepEqual(endpoint.accepted.map(({ id }) => id).sort(), [...ids].sort());
});
