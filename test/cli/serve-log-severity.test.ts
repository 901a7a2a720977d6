/**
 * --logger-severity holds for every line `mailgate serve` writes, the sink's and the spool's included
 * (they used to print INFO and DEBUG lines under --logger-severity warn).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { freePort, RawClient, waitFor } from "../helpers/clients.js";
import { MAIN, spawnNode } from "../helpers/serve-process.js";

test("mailgate serve --logger-severity warn: the sink and the spool write no INFO or DEBUG line", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "mailgate-severity-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  // A broker that cannot be reached (port 9, discard: nothing listens there on loopback) behind a spool:
  // a warning at start, then every message is spooled (a DEBUG line each) and answered 250.
  const { child, output, exited } = spawnNode(
    [
      MAIN,
      "serve",
      "--ports",
      String(port),
      "--logger-severity",
      "warn",
      "--sink",
      "amqp://guest@127.0.0.1:9/",
      "--sink-exchange",
      "mail",
      "--spool",
      join(dir, "spool"),
    ],
    { cwd: dir, env: { ...process.env, MAILGATE_SINK_SECRET: "guest" } },
  );
  t.after(() => child.kill("SIGKILL"));
  let client: RawClient | undefined;
  await waitFor(() => /\[WARN\]/.test(output()), "the unreachable broker's warning", 20_000);
  for (let attempt = 0; !client && attempt < 50; attempt++) {
    client = await RawClient.greeted(port).catch(async () => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      return undefined;
    });
  }
  assert.ok(client, `serve did not listen on ${port}:\n${output()}`);
  await client.command("EHLO x.test");
  await client.command("MAIL FROM:<a@x.test>");
  await client.command("RCPT TO:<b@y.test>");
  await client.command("DATA");
  assert.match(await client.command("Subject: hi\r\n\r\nbody\r\n."), /^250 /);
  client.close();
  child.kill("SIGTERM");
  await exited;
  assert.match(output(), /\[WARN\]/);
  assert.doesNotMatch(output(), /\[(INFO|DEBUG)\]/, output());
});
