/**
 * runWorkers for a library user's own server: examples/every-core.ts run as its user would, with two
 * workers: both serve (each stores under its own pid), its hooks apply, a rolling restart replaces them,
 * SIGTERM stops everything and the process exits 0.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { RawClient, waitFor } from "../helpers/clients.js";
import { spawnNode } from "../helpers/serve-process.js";

const EXAMPLE = new URL("../../examples/every-core.js", import.meta.url).pathname;

test("runWorkers runs examples/every-core.ts on two workers, restarts them and stops", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "mailgate-every-core-"));
  const { child, output, exited } = spawnNode([EXAMPLE], {
    cwd: dir,
    env: { ...process.env, PORT: "0", WORKERS: "2" },
  });
  t.after(async () => {
    child.kill("SIGKILL");
    await exited;
    await rm(dir, { recursive: true, force: true });
  });
  await waitFor(
    () => /serving on 127\.0\.0\.1:\d+ with workers \d+, \d+/.test(output()),
    "the start line",
    20_000,
  );
  const port = Number(/serving on 127\.0\.0\.1:(\d+)/.exec(output())?.[1]);

  const send = async (rcpt: string): Promise<string> => {
    const client = await RawClient.greeted(port);
    try {
      await client.command("EHLO x.test");
      await client.command("MAIL FROM:<a@x.test>");
      const answer = await client.command(`RCPT TO:<${rcpt}>`);
      if (!answer.startsWith("250")) return answer;
      await client.command("DATA");
      return await client.command("Subject: hi\r\n\r\nbody\r\n.");
    } finally {
      client.close();
    }
  };
  assert.match(await send("blocked@example.com"), /^550 /, "the subclass's hook refuses");
  const pids = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const reply = await send("box@y.test");
    assert.match(reply, /^250 2\.0\.0 Ok: stored as \S+ by worker \d+/);
    pids.add(/by worker (\d+)/.exec(reply)?.[1] as string);
  }
  assert.equal(pids.size, 2, "both workers served");

  child.kill("SIGUSR2");
  await waitFor(() => output().includes("Rolling restart done"), "the rolling restart", 30_000);
  const after = /by worker (\d+)/.exec(await send("box@y.test"))?.[1] as string;
  assert.ok(!pids.has(after), "a new worker serves after the restart");

  child.kill("SIGTERM");
  assert.equal(await exited, 0);
  assert.match(output(), /\nstopped\n/);
  assert.equal((await readdir(join(dir, "mail", "new"))).length, 5);
});
