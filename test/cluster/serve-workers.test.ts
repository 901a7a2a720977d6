/**
 * `mailgate serve --workers 2` as a user runs it: rolling restarts and a TLS reload while clients keep
 * sending (nobody refused or reset, every 250 stored exactly once), a worker killed under load, and the
 * connection limits exact over both workers.
 */
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { RawClient } from "../helpers/clients.js";
import { MailLoop, storedMarkers } from "../helpers/mail-loop.js";
import { printed, type Served, serveWorkers } from "../helpers/serve-process.js";

function workerPids(server: Served): string[] {
  return [...server.output().matchAll(/Worker (\d+) ready/g)].map((match) => match[1] as string);
}

/** Stops the server with SIGTERM; resolves with its exit status. */
async function terminate(server: Served): Promise<number | null> {
  server.child.kill("SIGTERM");
  return server.exited;
}

test("three rolling restarts and a SIGHUP while clients send: nobody refused or reset, every 250 stored once", async (t) => {
  const { served: server, dir } = await serveWorkers(t, [
    "--tls-mode",
    "optional",
    "--worker-drain-timeout",
    "5000",
  ]);
  const first = workerPids(server);
  assert.equal(first.length, 2);
  const loop = new MailLoop(server.port, 4);
  try {
    await loop.more(20);
    for (let restart = 1; restart <= 3; restart++) {
      server.child.kill("SIGUSR2");
      if (restart === 2) {
        server.child.kill("SIGHUP");
        await printed(server, /TLS certificates reloaded/, 2);
      }
      await printed(server, /Rolling restart done/, restart);
      await loop.more(10);
    }
  } finally {
    await loop.stop();
  }
  assert.deepEqual(loop.failures, []);
  const pids = workerPids(server);
  assert.equal(pids.length, 8, "2 workers at the start, 2 more for each restart");
  assert.equal(new Set(pids).size, 8, "each restart started new processes");
  assert.equal(await terminate(server), 0);
  const stored = await storedMarkers(join(dir, "mail"));
  for (const marker of loop.acked) assert.equal(stored.get(marker), 1, `${marker} stored once`);
  assert.equal(stored.size, loop.acked.size, "nothing stored that was not acknowledged");
  assert.match(server.output(), /mailgate stopped/);
});

test("a worker killed under load is replaced; every message acknowledged is stored", async (t) => {
  const { served: server, dir } = await serveWorkers(t, []);
  const [victim] = workerPids(server);
  const loop = new MailLoop(server.port, 4);
  try {
    await loop.more(20);
    process.kill(Number(victim), "SIGKILL");
    await printed(server, new RegExp(`Worker ${victim} killed by SIGKILL; a new one starts in \\d+ ms`), 1);
    await printed(server, /Worker \d+ ready/, 3);
    const beforeReplacement = loop.failures.length;
    await loop.more(20);
    assert.equal(loop.failures.length, beforeReplacement, "no failure once the replacement serves");
  } finally {
    await loop.stop();
  }
  assert.equal(await terminate(server), 0);
  const stored = await storedMarkers(join(dir, "mail"));
  for (const marker of loop.acked) assert.equal(stored.get(marker), 1, `${marker} stored once`);
  // A message whose 250 was lost with the worker may be stored without the client knowing (at-least-once).
  assert.ok(stored.size - loop.acked.size <= 4, "at most one unacknowledged message per client");
});

test("maxConnections and maxConnectionsPerIp hold exactly over 2 workers", async (t) => {
  const { served: server, dir } = await serveWorkers(t, [
    "--max-connections",
    "5",
    "--max-processings",
    "5",
    "--max-connections-per-ip",
    "3",
  ]);
  const held: RawClient[] = [];
  t.after(() => {
    for (const client of held) client.close();
  });
  for (let i = 0; i < 3; i++) held.push(await RawClient.greeted(server.port, "127.0.0.1", "127.0.0.1"));
  const fourth = await RawClient.connect(server.port, "127.0.0.1", "127.0.0.1");
  assert.match(
    await fourth.reply(),
    /^421 4\.7\.0 .* Too many connections from your address, try again later\r\n$/,
  );
  fourth.close();
  for (let i = 0; i < 2; i++) held.push(await RawClient.greeted(server.port, "127.0.0.1", "127.0.0.2"));
  const sixth = await RawClient.connect(server.port, "127.0.0.1", "127.0.0.3");
  assert.match(
    await sixth.reply(),
    /^421 4\.7\.0 .* Service too busy or not available, try again later\r\n$/,
  );
  sixth.close();
  // The connections from 127.0.0.1 are spread over both workers: each stores a message under its pid.
  for (const [i, client] of held.slice(0, 3).entries()) {
    for (const line of ["EHLO x.test", "MAIL FROM:<a@x.test>", "RCPT TO:<b@y.test>", "DATA"]) {
      assert.match(await client.command(line), /^[23]/);
    }
    assert.match(await client.command(`Subject: ${i}\r\n\r\nbody\r\n.`), /^250 /);
  }
  const names = await readdir(join(dir, "mail", "new"));
  assert.equal(new Set(names.map((name) => /P(\d+)Q/.exec(name)?.[1])).size, 2, "both workers served");
  // A connection that ends gives its place back, in the primary too.
  assert.match(await (held.shift() as RawClient).command("QUIT"), /^221 /);
  // The worker tells the primary right after its 221: a few connections may still find the place taken.
  let again: RawClient | undefined;
  for (let attempt = 0; attempt < 50 && !again; attempt++) {
    const client = await RawClient.connect(server.port, "127.0.0.1", "127.0.0.1");
    if ((await client.reply()).startsWith("220 ")) again = client;
    else client.close();
  }
  assert.ok(again, "a place given back is taken again");
  held.push(again);
});
