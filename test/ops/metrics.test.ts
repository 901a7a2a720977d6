/**
 * The metrics' own rules: verbs a client invents are counted as "other" (no label per invented word),
 * replies by class, and open sessions by their TLS and AUTH state as they are when scraped.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ServeMetrics } from "../../src/ops/metrics.js";
import { newContext } from "../helpers/session-harness.js";

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test("verbs the server does not handle are one label, other", async () => {
  const metrics = new ServeMetrics();
  const ctx = newContext();
  for (const verb of ["EHLO", "MAIL", "MAIL", "X-RANDOM-1", "X-RANDOM-2", "GET", "__proto__"]) {
    metrics.command(ctx, verb);
  }
  const text = await metrics.render();
  assert.equal(sample(text, 'mailgate_commands_total{verb="EHLO"}'), 1);
  assert.equal(sample(text, 'mailgate_commands_total{verb="MAIL"}'), 2);
  assert.equal(sample(text, 'mailgate_commands_total{verb="other"}'), 4);
  assert.doesNotMatch(text, /X-RANDOM|__proto__|verb="GET"/);
});

test("replies by class, and open sessions by TLS and AUTH state when scraped", async () => {
  const metrics = new ServeMetrics();
  const plain = newContext();
  const secured = newContext();
  for (const code of [220, 250, 354, 421, 550, 535]) metrics.reply(plain, code);
  metrics.connectionOpened(plain);
  metrics.connectionOpened(secured);
  let text = await metrics.render();
  assert.deepEqual(
    ["2xx", "3xx", "4xx", "5xx"].map((c) => sample(text, `mailgate_replies_total{class="${c}"}`)),
    [2, 1, 1, 2],
  );
  assert.equal(sample(text, 'mailgate_sessions_open{tls="no",auth="no"}'), 2);
  // STARTTLS then AUTH in one of them: read as they are at the next scrape.
  secured.server.encrypted = new Date();
  secured.server.authenticated = new Date();
  text = await metrics.render();
  assert.equal(sample(text, 'mailgate_sessions_open{tls="no",auth="no"}'), 1);
  assert.equal(sample(text, 'mailgate_sessions_open{tls="yes",auth="yes"}'), 1);
  assert.equal(sample(text, "mailgate_connections_open"), 2);
  metrics.connectionClosed(secured);
  text = await metrics.render();
  assert.equal(sample(text, 'mailgate_sessions_open{tls="yes",auth="yes"}'), 0);
  assert.equal(sample(text, "mailgate_connections_open"), 1);
  assert.equal(sample(text, "mailgate_connections_total"), 2);
});
