/**
 * What the workers of `mailgate serve --workers 2` share through the primary: the count of a client a
 * PROXY header names, the session-ticket key (a TLS session resumes on either worker), and the AUTH
 * failures of an address (maxAuthFailuresPerIp over all workers).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { freePort, RawClient } from "../helpers/clients.js";
import { type Served, startServe } from "../helpers/serve-process.js";

async function twoWorkers(t: TestContext, args: string[]): Promise<Served> {
  const dir = await mkdtemp(join(tmpdir(), "mailgate-shared-"));
  const served = await startServe(dir, ["--workers", "2", "--hosts", "127.0.0.1", ...args]);
  t.after(async () => {
    served.child.kill("SIGKILL");
    await served.exited;
    await rm(dir, { recursive: true, force: true });
  });
  return served;
}

test("a client named by a PROXY header is counted over both workers (maxConnectionsPerIp)", async (t) => {
  const port = await freePort();
  const served = await twoWorkers(t, [
    ...["--ports", String(port), "--proxy-ports", String(port), "--proxy-trusted", "127.0.0.1"],
    ...["--max-connections-per-ip", "3"],
  ]);
  const held: RawClient[] = [];
  t.after(() => {
    for (const client of held) client.close();
  });
  const proxied = async (client: string) => {
    const connection = await RawClient.connect(served.port);
    held.push(connection);
    connection.write(`PROXY TCP4 ${client} 192.0.2.1 40000 25\r\n`);
    return connection.reply();
  };
  for (let i = 0; i < 3; i++) assert.match(await proxied("203.0.113.9"), /^220 /);
  assert.match(
    await proxied("203.0.113.9"),
    /^421 4\.7\.0 .* Too many connections from your address, try again later\r\n$/,
  );
  assert.match(await proxied("203.0.113.10"), /^220 /, "another client behind the same proxy is served");
});

/** Connects over implicit TLS (resuming `session` if given) and reads the greeting. */
async function tlsGreeting(port: number, session?: Buffer): Promise<TLSSocket> {
  const socket = tlsConnect({
    port,
    host: "127.0.0.1",
    rejectUnauthorized: false,
    ...(session && { session }),
  });
  const greeting = await new Promise<string>((resolve, reject) => {
    socket.once("data", (chunk: Buffer) => resolve(chunk.toString("latin1")));
    socket.once("error", reject);
  });
  assert.match(greeting, /^220 /);
  return socket;
}

test("a TLS session resumes on either worker: the session-ticket key comes from the primary", async (t) => {
  const port = await freePort();
  const served = await twoWorkers(t, ["--ports", String(port), "--tls-ports", String(port)]);
  const first = await tlsGreeting(served.port);
  // TLS 1.3 sends its tickets after the handshake: the greeting may come first.
  const session = await new Promise<Buffer>((resolve) => first.once("session", resolve));
  assert.equal(first.isSessionReused(), false);
  first.destroy();
  // Connections in turn go to one worker, then the other (equally loaded): each one resumes.
  for (let i = 0; i < 4; i++) {
    const socket = await tlsGreeting(served.port, session);
    assert.equal(socket.isSessionReused(), true, `connection ${i + 2} resumed`);
    socket.destroy();
  }
});

test("AUTH failures of one address are counted over both workers (maxAuthFailuresPerIp)", async (t) => {
  const served = await twoWorkers(t, [
    ...["--auth-mode", "optional", "--auth-over-plaintext", "--max-auth-failures-per-ip", "3"],
  ]);
  const guess = Buffer.from("\0user\0wrong").toString("base64");
  const replies: string[] = [];
  for (let i = 0; i < 4; i++) {
    const client = await RawClient.greeted(served.port);
    await client.command("EHLO x.test");
    replies.push(await client.command(`AUTH PLAIN ${guess}`));
    client.close();
  }
  assert.deepEqual(
    replies.map((reply) => reply.slice(0, 3)),
    ["535", "535", "535", "421"],
  );
  assert.match(replies[3] as string, /too many authentication failures from your address/);
});
