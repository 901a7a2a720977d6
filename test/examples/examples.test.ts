/** The examples outside the cookbook (test/docs/cookbook.test.ts runs those) over loopback, with a raw client. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createFileSinkServer } from "../../examples/stream-to-file.js";
import { RawClient } from "../helpers/clients.js";
import { QUIET, started, transaction } from "../helpers/example-servers.js";

test("stream-to-file writes the message to a file before answering 250", async (t) => {
  const directory = await mkdtemp(join(tmpdir(), "mailgate-example-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  const server = createFileSinkServer(directory, QUIET);
  const client = await RawClient.greeted(await started(t, server));
  await client.command("EHLO client.test");
  const line = `${"y".repeat(76)}\r\n`;
  const body = `Subject: stream\r\n\r\n${line.repeat(50_000)}`;
  const replies = await transaction(client, "a@x.test", ["b@y.test"], body);
  assert.match(replies.at(-1) ?? "", /^250 2\.0\.0 Ok: written to .*message-1\.eml\r\n$/);
  const stored = await readFile(join(directory, "message-1.eml"));
  const digest = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
  assert.equal(digest(stored), digest(body));
  client.close();
});
