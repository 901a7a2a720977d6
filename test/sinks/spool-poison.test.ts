/**
 * A message the sink cannot take although it takes the others (one its endpoint drops the connection on,
 * or too slow to confirm in time: SinkUnavailable each time) must not hold the spool: it used to be
 * retried for ever without counting, marking the sink down at each try, so live mail went to the spool
 * until it was full and was then all answered 451 while the sink was healthy.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SinkUnavailable, WholeMessage } from "../../src/index.js";
import { readWholeMessage } from "../../src/sinks/collect.js";
import type { DeliveryReceipt, MessageStore, StoreEnvelope } from "../../src/store/store.js";
import { waitFor } from "../helpers/clients.js";
import { filesIn, keptLogger, spoolFixture } from "./spool-helpers.js";

/** A sink that takes every message but those with POISON in them, which it "cannot take now". */
function choosySink(): MessageStore & { taken: string[] } {
  const taken: string[] = [];
  return {
    taken,
    async deliver(envelope: StoreEnvelope, message: AsyncIterable<Buffer>): Promise<DeliveryReceipt> {
      const body = (await readWholeMessage(message, Number.MAX_SAFE_INTEGER)).toString();
      if (body.includes("POISON")) throw new SinkUnavailable("Test sink", "the connection was reset");
      taken.push(envelope.id ?? "");
      return { id: envelope.id ?? "", location: "taken", size: body.length };
    },
  };
}

const envelope = (id: string): StoreEnvelope => ({ from: "a@x.test", to: ["b@y.test"], id });
const message = (text: string) => new WholeMessage(Buffer.from(`Subject: ${text}\r\n\r\n${text}\r\n`));

test("a spooled message the sink cannot take while it takes others moves to refused/ after maxRefusals tries", async (t) => {
  const fixture = await spoolFixture(t);
  const sink = choosySink();
  const logger = keptLogger();
  const spool = await fixture.open(sink, {
    logger,
    maxRefusals: 3,
    maxMessages: 2,
    retryDelay: { min: 20, max: 100 },
  });
  // The poison is spooled (250: the sink said "not now"), as two more fill the spool.
  await spool.deliver(envelope("P1"), message("POISON one"));
  await spool.deliver(envelope("P2"), message("POISON two"));
  // The spool is full and the sink was just found down: a good message still reaches the sink.
  await spool.deliver(envelope("G1"), message("good one"));
  assert.deepEqual(sink.taken, ["G1"]);
  // Good mail keeps flowing; the poison leaves the spool (refused/) once it has failed while others passed.
  let n = 2;
  await waitFor(
    () => {
      void spool.deliver(envelope(`G${n++}`), message("good")).catch(() => {});
      return spool.stats.refused === 2 && spool.stats.messages === 0;
    },
    "the poison to move to refused/",
    10_000,
  );
  assert.equal((await filesIn(fixture.directory, "refused/new")).length, 2);
  assert.ok(logger.lines.some((line) => /could not take message P1 while it took others/.test(line)));
});
