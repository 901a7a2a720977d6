/**
 * Connections refused at accept are logged at most once per reason and interval, with a count of the
 * others: a flood must not write a line per connection (a disk filled by the log is a denial of service).
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { RefusalWarnings } from "../../src/server/refusal-warnings.js";
import { RawClient, startRecordingServer, waitFor } from "../helpers/clients.js";

test("the first refusal is logged at once, the others of the interval in one line at its end, by address", async () => {
  const lines: string[] = [];
  const warnings = new RefusalWarnings((line) => lines.push(line), 100);
  warnings.refused("192.0.2.1", "maxConnections (1) reached");
  for (let i = 0; i < 500; i++) warnings.refused("192.0.2.2", "maxConnections (1) reached");
  for (let i = 0; i < 20; i++) warnings.refused("192.0.2.3", "maxConnections (1) reached");
  warnings.refused("192.0.2.9", "maxConnections (1) reached");
  warnings.refused("192.0.2.8", "maxConnections (1) reached");
  warnings.refused("192.0.2.3", "maxConnectionsPerIp (2) reached");
  warnings.refused("", "maxConnectionsPerIp (2) reached");
  assert.deepEqual(lines, [
    "Refused 192.0.2.1: maxConnections (1) reached",
    "Refused 192.0.2.3: maxConnectionsPerIp (2) reached",
  ]);
  await sleep(150);
  assert.deepEqual(lines.slice(2).sort(), [
    "Refused 1 more in the last 0.1 s from 1 address(es) (most: an unknown address 1): maxConnectionsPerIp (2) reached",
    "Refused 522 more in the last 0.1 s from 4 address(es) (most: 192.0.2.2 500, 192.0.2.3 20, 192.0.2.9 1): maxConnections (1) reached",
  ]);
  // A flood that goes on: one line per interval.
  warnings.refused("192.0.2.4", "maxConnections (1) reached");
  await sleep(150);
  assert.equal(
    lines.at(-1),
    "Refused 1 more in the last 0.1 s from 1 address(es) (most: 192.0.2.4 1): maxConnections (1) reached",
  );
  // Once an interval passed without refusals, the next one is logged at once, with its address.
  await sleep(150);
  const quietCount = lines.length;
  warnings.refused("192.0.2.5", "maxConnections (1) reached");
  assert.deepEqual(lines.slice(quietCount), ["Refused 192.0.2.5: maxConnections (1) reached"]);
});

test("flush() writes the summaries under way at once (the server stops); nothing is left to come", async () => {
  const lines: string[] = [];
  const warnings = new RefusalWarnings((line) => lines.push(line), 100);
  warnings.refused("192.0.2.1", "over the messages-per-minute limit (421 4.7.0)");
  warnings.refused("192.0.2.1", "over the messages-per-minute limit (421 4.7.0)");
  warnings.flush();
  assert.deepEqual(lines, [
    "Refused 192.0.2.1: over the messages-per-minute limit (421 4.7.0)",
    "Refused 1 more in the last 0.1 s from 1 address(es) (most: 192.0.2.1 1): over the messages-per-minute limit (421 4.7.0)",
  ]);
  await sleep(150);
  assert.equal(lines.length, 2);
});

test("at most 1000 addresses are counted apart in an interval; the rest are still counted", async () => {
  const lines: string[] = [];
  const warnings = new RefusalWarnings((line) => lines.push(line), 100);
  warnings.refused("first", "r");
  for (let i = 0; i < 1500; i++) warnings.refused(`198.51.100.${i}`, "r");
  warnings.flush();
  assert.match(lines[1] ?? "", /^Refused 1500 more in the last 0\.1 s from 1000\+ address\(es\) \(most: /);
});

test("a client without an address (a UNIX socket peer, a reset before accept) is named so, not 'undefined'", () => {
  const lines: string[] = [];
  new RefusalWarnings((line) => lines.push(line), 100).refused("", "maxConnections (1) reached");
  assert.deepEqual(lines, ["Refused an unknown address: maxConnections (1) reached"]);
});

async function flood(t: TestContext, port: number, connections: number): Promise<void> {
  const refused = await Promise.all(
    Array.from({ length: connections }, async () => {
      const client = await RawClient.connect(port);
      t.after(() => client.close());
      return client.untilEnd();
    }),
  );
  for (const reply of refused) assert.match(reply, /^421 /);
}

test("a flood of connections beyond maxConnections writes one warning, not one per connection", async (t) => {
  const warnings: string[] = [];
  const { server, port } = await startRecordingServer(t, {
    maxConnections: 1,
    maxProcessings: 1,
    onLogging(_ctx, severity, message) {
      if (severity === "warn") warnings.push(message);
    },
  });
  assert.ok(server);
  const holder = await RawClient.greeted(port);
  t.after(() => holder.close());
  await flood(t, port, 200);
  await waitFor(() => warnings.length > 0, "the first refusal's warning");
  assert.deepEqual(warnings, [warnings[0]]);
  assert.match(warnings[0] ?? "", /^Refused 127\.0\.0\.1: maxConnections \(1\) reached$/);
});

test("the same for maxConnectionsPerIp", async (t) => {
  const warnings: string[] = [];
  const { port } = await startRecordingServer(t, {
    maxConnectionsPerIp: 1,
    onLogging(_ctx, severity, message) {
      if (severity === "warn") warnings.push(message);
    },
  });
  const holder = await RawClient.greeted(port);
  t.after(() => holder.close());
  await flood(t, port, 200);
  await waitFor(() => warnings.length > 0, "the first refusal's warning");
  assert.deepEqual(warnings, [warnings[0]]);
  assert.match(warnings[0] ?? "", /^Refused 127\.0\.0\.1: maxConnectionsPerIp \(1\) reached$/);
});

test("the same for early talkers: a flood of them writes one line, not one per connection", async (t) => {
  const lines: string[] = [];
  const { server, port } = await startRecordingServer(t, {
    greetingDelay: 200,
    onLogging(_ctx, severity, message) {
      if (/early talker/i.test(message)) lines.push(`${severity} ${message}`);
    },
  });
  const talkers = await Promise.all(
    Array.from({ length: 100 }, async () => {
      const talker = await RawClient.connect(port);
      t.after(() => talker.close());
      talker.write("EHLO too.early\r\n");
      return talker.untilEnd();
    }),
  );
  for (const reply of talkers) assert.match(reply, /^554 5\.5\.0 /);
  assert.deepEqual(lines, ["warn Refused 127.0.0.1: data before the greeting (early talker)"]);
  await server.stop();
  assert.deepEqual(lines.slice(1), [
    "warn Refused 99 more in the last 10 s from 1 address(es) (most: 127.0.0.1 99): data before the greeting (early talker)",
  ]);
});
