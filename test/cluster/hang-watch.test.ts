/**
 * The primary's watch for a worker whose event loop is blocked (runWorkers hangTimeout, --worker-hang-timeout):
 * a hook stuck in a loop would otherwise keep its worker, and every connection passed to it, forever.
 * The worker is killed once it has not answered for hangTimeout, the error line says why, a new worker
 * takes its place, and the other worker serves meanwhile.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { RawClient, waitFor } from "../helpers/clients.js";
import { spawnNode } from "../helpers/serve-process.js";

const PROGRAM = new URL("./hanging-worker.js", import.meta.url).pathname;

/** hanging-worker.ts with `env`, in a process group of its own (killed whole when the test ends), serving. */
async function startProgram(t: TestContext, env: Record<string, string>) {
  const { child, output, exited } = spawnNode([PROGRAM], { env: { ...process.env, ...env }, detached: true });
  t.after(async () => {
    // The whole group: a worker stuck in its loop outlives its primary otherwise (it cannot act on the
    // primary's departure), and would spin on after a failed test.
    try {
      process.kill(-(child.pid as number), "SIGKILL");
    } catch {
      // the group is gone already
    }
    await exited;
  });
  await waitFor(
    () => /serving on 127\.0\.0\.1:\d+ with workers \d+, \d+/.test(output()),
    "the start line",
    20_000,
  );
  return { child, output, port: Number(/serving on 127\.0\.0\.1:(\d+)/.exec(output())?.[1]) };
}

test("a worker stuck in a hook is killed after hangTimeout and replaced; the other serves meanwhile", async (t) => {
  const { child, output, port } = await startProgram(t, { HANG_TIMEOUT: "1000" });
  const started = /with workers (\d+), (\d+)/.exec(output())?.slice(1) as string[];

  const send = async (client: RawClient, rcpt: string): Promise<string> => {
    await client.command("EHLO x.test");
    await client.command("MAIL FROM:<a@x.test>");
    const answer = await client.command(`RCPT TO:<${rcpt}>`);
    if (!answer.startsWith("250")) return answer;
    await client.command("DATA");
    return client.command("Subject: hi\r\n\r\nbody\r\n.");
  };

  const stuck = await RawClient.greeted(port);
  await stuck.command("EHLO x.test");
  await stuck.command("MAIL FROM:<a@x.test>");
  await stuck.send("RCPT TO:<hang@example.com>\r\n"); // never answered: the hook loops
  // The other worker serves while the first is stuck (the stuck one holds a connection: it is the busier).
  const served = await RawClient.greeted(port);
  assert.match(await send(served, "box@y.test"), /^250 2\.0\.0 Ok: worker \d+/);
  served.close();

  await waitFor(() => /has not answered for \d+ ms/.test(output()), "the watch's error line", 10_000);
  const killed =
    /Worker (\d+) has not answered for (\d+) ms, over the 1000 ms of the worker hang timeout \(its event loop is blocked/.exec(
      output(),
    )?.[1];
  assert.ok(killed && started.includes(killed), `one of the started workers was killed:\n${output()}`);
  await stuck.closed;
  await waitFor(
    () => output().includes(`Worker ${killed} killed by SIGKILL; a new one starts in`),
    "the replacement",
    5000,
  );

  // The replacement serves: sessions reach two live workers again, none of them the killed one.
  await waitFor(
    () => {
      const now = [...output().matchAll(/workers now (\d+), (\d+)/g)].at(-1)?.slice(1) ?? [];
      return now.length === 2 && !now.includes(killed);
    },
    "two workers serving again",
    10_000,
  );
  for (let i = 0; i < 3; i++) {
    const client = await RawClient.greeted(port);
    assert.match(await send(client, "box@y.test"), /^250 2\.0\.0 Ok: worker \d+/);
    client.close();
  }

  // The primary itself paused (SIGSTOP: Ctrl-Z, a frozen container) for longer than the hang timeout: it
  // could not hear the workers meanwhile; none is taken for hung.
  const beforePause = output().length;
  process.kill(child.pid as number, "SIGSTOP");
  await new Promise((resolve) => setTimeout(resolve, 2500));
  process.kill(child.pid as number, "SIGCONT");
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.doesNotMatch(output().slice(beforePause), /has not answered/);
  const client = await RawClient.greeted(port);
  assert.match(await send(client, "box@y.test"), /^250 2\.0\.0 Ok: worker \d+/);
  client.close();
});

test("a worker that is busy but turning is not taken for hung, however many connections wait to reach it", async (t) => {
  // Each connection costs its worker 200 ms of blocking work, and 24 arrive at once: a message from the
  // primary waits in the channel behind the sockets sent before it (one turn of the worker each), so a
  // ping from the primary would take ~2.4 s to arrive. The worker's own heartbeat comes between turns.
  const { output, port } = await startProgram(t, { HANG_TIMEOUT: "1000", BUSY_CONNECT_MS: "200" });
  const clients = await Promise.all(Array.from({ length: 24 }, () => RawClient.greeted(port)));
  for (const client of clients) client.close();
  // One more watch period after the last greeting: a late verdict would show now.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.doesNotMatch(output(), /has not answered/);
  assert.doesNotMatch(output(), /killed by SIGKILL/);
});
