/**
 * `mailgate serve --workers 2` with operations and rate limits, as an operator runs it: one /metrics whose
 * totals are those of both workers plus the primary's refusals, /readyz from the workers' readiness, and
 * --connections-per-minute counted in the primary for all workers.
 */
import assert from "node:assert/strict";
import { readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { RawClient } from "../helpers/clients.js";
import { endpointOf, get, sample } from "../helpers/scrape.js";
import { printed, serveWorkers } from "../helpers/serve-process.js";

/** Sends one message on a greeted client; resolves with the reply to its end of data. */
async function send(client: RawClient, subject: string): Promise<string> {
  for (const line of ["EHLO x.test", "MAIL FROM:<a@x.test>", "RCPT TO:<b@y.test>", "DATA"]) {
    assert.match(await client.command(line), /^[23]/);
  }
  return client.command(`Subject: ${subject}\r\n\r\nbody\r\n.`);
}

/** The process ids in the names of the stored messages: which workers stored them. */
async function storingPids(maildir: string): Promise<Set<string>> {
  const names = await readdir(join(maildir, "new"));
  return new Set(names.map((name) => /P(\d+)Q/.exec(name)?.[1] ?? ""));
}

test("one /metrics for both workers: their totals and the primary's refusal; /readyz from the workers", async (t) => {
  const { served, dir } = await serveWorkers(t, [
    "--metrics-listen",
    "127.0.0.1:0",
    "--max-connections-per-ip",
    "3",
  ]);
  const endpoint = endpointOf(served);
  // Three connections held at once from 127.0.0.1 are spread over both workers (least loaded first).
  const held: RawClient[] = [];
  t.after(() => {
    for (const client of held) client.close();
  });
  for (let i = 0; i < 3; i++) held.push(await RawClient.greeted(served.port, "127.0.0.1", "127.0.0.1"));
  let accepted = 0;
  for (const [i, client] of held.entries()) {
    for (let message = 0; message < 2; message++) {
      if ((await send(client, `${i}.${message}`)).startsWith("250 ")) accepted++;
    }
  }
  assert.equal(accepted, 6);
  assert.equal((await storingPids(join(dir, "mail"))).size, 2, "both workers stored messages");
  // The fourth from 127.0.0.1 is refused by the primary at accept.
  const fourth = await RawClient.connect(served.port, "127.0.0.1", "127.0.0.1");
  assert.match(await fourth.untilEnd(), /^421 4\.7\.0 .*Too many connections from your address/);

  const metrics = await get(`${endpoint}/metrics`);
  assert.equal(metrics.status, 200);
  const text = metrics.body;
  assert.equal(sample(text, "mailgate_workers"), 2, text);
  assert.equal(sample(text, "mailgate_workers_scraped"), 2, text);
  assert.equal(sample(text, 'mailgate_messages_total{outcome="accepted"}'), accepted, text);
  assert.equal(sample(text, 'mailgate_messages_total{outcome="refused"}'), 0, text);
  assert.equal(sample(text, "mailgate_connections_total"), 3, text);
  assert.equal(sample(text, "mailgate_connections_open"), 3, text);
  assert.equal(sample(text, 'mailgate_commands_total{verb="DATA"}'), accepted, text);
  assert.equal(sample(text, 'mailgate_connections_refused_total{reason="max-connections-per-ip"}'), 1, text);
  assert.equal(sample(text, 'mailgate_store_duration_seconds_count{outcome="stored"}'), accepted, text);
  // Default metrics merged by their aggregators: one version line, not one per process.
  assert.equal(text.match(/^nodejs_version_info\{/gm)?.length, 1, text);

  assert.deepEqual(await get(`${endpoint}/healthz`), { status: 200, body: "ok\n" });
  assert.deepEqual(await get(`${endpoint}/readyz`), { status: 200, body: "ready\n" });
  // The Maildir replaced by a file: no worker can store, and /readyz says why for each.
  const maildir = join(dir, "mail");
  await rename(maildir, `${maildir}.away`);
  await writeFile(maildir, "not a directory");
  const unready = await get(`${endpoint}/readyz`);
  assert.equal(unready.status, 503, unready.body);
  assert.match(
    unready.body,
    /^not ready: no worker is ready \(worker \d+: Cannot use Maildir .*; worker \d+: /,
  );
  await rm(maildir);
  await rename(`${maildir}.away`, maildir);
  assert.deepEqual(await get(`${endpoint}/readyz`), { status: 200, body: "ready\n" });
});

test("--connections-per-minute holds across both workers: the 4th connection from one address gets 421 4.7.0", async (t) => {
  const { served, dir } = await serveWorkers(t, ["--connections-per-minute", "3"]);
  const held: RawClient[] = [];
  t.after(() => {
    for (const client of held) client.close();
  });
  for (let i = 0; i < 3; i++) held.push(await RawClient.greeted(served.port, "127.0.0.1", "127.0.0.1"));
  for (const [i, client] of held.entries()) assert.match(await send(client, `${i}`), /^250 /);
  assert.equal((await storingPids(join(dir, "mail"))).size, 2, "the three were served by both workers");
  // Whichever worker gets the fourth (both have room), the count is the primary's.
  for (const client of held.splice(0)) {
    assert.match(await client.command("QUIT"), /^221 /);
    client.close();
  }
  const fourth = await RawClient.connect(served.port, "127.0.0.1", "127.0.0.1");
  assert.match(
    await fourth.untilEnd(),
    /^421 4\.7\.0 Too many connections from your address, try again later\r\n$/,
  );
  // Another address has its own count.
  const other = await RawClient.greeted(served.port, "127.0.0.1", "127.0.0.2");
  assert.match(await other.command("QUIT"), /^221 /);
  other.close();
  await printed(served, /Refused 127\.0\.0\.1: over the connections-per-minute limit \(421 4\.7\.0\)/);
});
