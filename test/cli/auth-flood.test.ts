/**
 * `mailgate serve --auth-users` under an AUTH flood (issue 16): the password checks (scrypt, on libuv's
 * thread pool, which the Maildir's file I/O shares) run a bounded number at once behind a bounded queue,
 * so a flood can neither occupy the pool nor pile up work; the attempts beyond the queue get 454 at once.
 *
 * crypto.scrypt is wrapped before the accounts module loads it, to count the computations running at once
 * and to hold them while the test looks (no timing involved).
 */
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { RawClient, silentLogger, waitFor } from "../helpers/clients.js";

type Callback = (error: Error | null, key: Buffer) => void;
const originalScrypt = crypto.scrypt as (...args: unknown[]) => void;
let running = 0;
let mostAtOnce = 0;
let holding = false;
const held: (() => void)[] = [];
(crypto as { scrypt: unknown }).scrypt = (...args: unknown[]) => {
  const callback = args.pop() as Callback;
  const compute = () => {
    running++;
    mostAtOnce = Math.max(mostAtOnce, running);
    originalScrypt(...args, (error: Error | null, key: Buffer) => {
      running--;
      callback(error, key);
    });
  };
  if (holding) held.push(compute);
  else compute();
};
syncBuiltinESMExports();
const accountsModule = await import("../../src/cli/accounts.js");
const { Accounts, hashPassword } = accountsModule;
const { createStoringServer } = await import("../../src/cli/serve.js");
const { MaildirStore } = await import("../../src/store/maildir.js");
const { PASSWORD_CHECKS_AT_ONCE, PASSWORD_CHECKS_WAITING } = accountsModule as unknown as Record<
  string,
  number
>;

const FLOOD = 40;
const plain = (user: string, password: string) => Buffer.from(`\0${user}\0${password}`).toString("base64");

/**
 * `mailgate serve`'s server with AUTH and one account, alice:right, on a fresh Maildir; stopped and
 * removed when the test ends. The flood comes from one address: with the per-address limit its checks
 * would run one at a time and never reach the queue, so that limit is off (the flood stands for many).
 */
async function startServerWithAlice(t: TestContext): Promise<{ dir: string; port: number }> {
  const dir = await mkdtemp(join(tmpdir(), "mailgate-auth-flood-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "users"), `alice:${await hashPassword("right")}\n`);
  const store = await MaildirStore.open(join(dir, "mail"));
  t.after(() => store.close());
  const accounts = await Accounts.load(join(dir, "users"));
  const server = createStoringServer(
    {
      hosts: "127.0.0.1",
      ports: "0",
      hostname: "mx.test",
      authMode: "optional",
      authOverPlaintext: true,
      maxAuthFailuresPerIp: 0,
      logger: silentLogger,
      loggerSeverity: "fatal",
    } as Parameters<typeof createStoringServer>[0],
    store,
    { accounts },
  );
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  return { dir, port: server.ports[0] as number };
}

/** FLOOD clients, greeted and past EHLO, ready to send AUTH at once. */
function floodClients(port: number): Promise<RawClient[]> {
  return Promise.all(
    Array.from({ length: FLOOD }, async () => {
      const client = await RawClient.greeted(port);
      assert.match(await client.command("EHLO flood.test"), /^250 /m);
      return client;
    }),
  );
}

test("an AUTH flood: at most a few password checks at once, a bounded queue, 454 at once beyond it; a delivery meanwhile is stored", async (t) => {
  const { dir, port } = await startServerWithAlice(t);
  const flood = await floodClients(port);
  holding = true;
  const answered: string[] = [];
  const answers = flood.map((client) => {
    client.write(`AUTH PLAIN ${plain("alice", "wrong")}\r\n`);
    return client.reply(60_000).then((reply) => {
      answered.push(reply);
      return reply;
    });
  });
  try {
    // Every attempt was read: it is computing (held here), waiting in the queue, or already answered.
    await waitFor(
      () =>
        held.length >= FLOOD || answered.length >= FLOOD - PASSWORD_CHECKS_AT_ONCE - PASSWORD_CHECKS_WAITING,
      "the flood's AUTH commands to be read",
      10_000,
    );
    assert.equal(held.length, PASSWORD_CHECKS_AT_ONCE, `${held.length} password checks started at once`);
    assert.equal(answered.length, FLOOD - PASSWORD_CHECKS_AT_ONCE - PASSWORD_CHECKS_WAITING);
    for (const reply of answered) assert.match(reply, /^454 4\.7\.0 Temporary authentication failure/);

    // While the checks are held and the queue is full: a delivery is stored at once, and a legitimate
    // AUTH is answered at once too (454: the client tries again later), not queued without bound.
    const mail = await RawClient.greeted(port);
    assert.match(await mail.command("EHLO legit.test"), /^250 /m);
    assert.match(await mail.command("MAIL FROM:<a@x.test>"), /^250 /);
    assert.match(await mail.command("RCPT TO:<b@y.test>"), /^250 /);
    assert.match(await mail.command("DATA"), /^354 /);
    const body = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?\r\n".repeat(4900);
    assert.match(await mail.command(`Subject: legit\r\n\r\n${body}.`), /^250 2\.0\.0 Ok: stored as /);
    assert.equal((await readdir(join(dir, "mail", "new"))).length, 1);
    assert.match(await mail.command(`AUTH PLAIN ${plain("alice", "right")}`), /^454 4\.7\.0 /);
    mail.close();
  } finally {
    holding = false;
    for (const compute of held.splice(0)) compute();
  }
  // Released: the checks that were admitted run, still no more than the bound at once, and fail.
  const replies = await Promise.all(answers);
  const refused = replies.filter((reply) => reply.startsWith("454 ")).length;
  assert.equal(refused, FLOOD - PASSWORD_CHECKS_AT_ONCE - PASSWORD_CHECKS_WAITING);
  for (const reply of replies) assert.match(reply, /^(454 4\.7\.0|535 5\.7\.8) /);
  assert.equal(mostAtOnce, PASSWORD_CHECKS_AT_ONCE);
  for (const client of flood) client.close();

  // The flood's address is now blocked (maxAuthFailuresPerIp); alice from another address logs in.
  const alice = await RawClient.greeted(port, "127.0.0.1", "127.0.0.2");
  assert.match(await alice.command("EHLO alice.test"), /^250 /m);
  assert.match(await alice.command(`AUTH PLAIN ${plain("alice", "right")}`), /^235 /);
  alice.close();
});

test("through an AUTH flood that fills the queue, a user who logged in recently gets in at once; a wrong password still waits", async (t) => {
  const { port } = await startServerWithAlice(t);
  const login = async (password: string, from: string) => {
    const client = await RawClient.greeted(port, "127.0.0.1", from);
    await client.command("EHLO alice.test");
    const reply = await client.command(`AUTH PLAIN ${plain("alice", password)}`);
    client.close();
    return reply;
  };
  assert.match(await login("right", "127.0.0.3"), /^235 /);

  const flood = await floodClients(port);
  holding = true;
  let answered = 0;
  const answers = flood.map((client) => {
    client.write(`AUTH PLAIN ${plain("alice", "wrong")}\r\n`);
    return client.reply(60_000).finally(() => answered++);
  });
  try {
    await waitFor(
      () => answered >= FLOOD - PASSWORD_CHECKS_AT_ONCE - PASSWORD_CHECKS_WAITING,
      "the queue to fill",
      10_000,
    );
    // Before: 454 4.7.0, as for everyone while the queue is full.
    assert.match(await login("right", "127.0.0.4"), /^235 /);
    assert.match(await login("not-right", "127.0.0.5"), /^454 4\.7\.0 /);
  } finally {
    holding = false;
    for (const compute of held.splice(0)) compute();
  }
  await Promise.all(answers);
  for (const client of flood) client.close();
});
