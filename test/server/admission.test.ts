/**
 * Who is let in, and as whom: behind a PROXY header trust and per-address limits follow the client the
 * header names, never the proxy; connections still in their TLS handshake or PROXY header neither hold a
 * slot after the client has gone nor delay a stop; a connection slot frees when its session ends.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { type Socket, connect as tcpConnect } from "node:net";
import { type TestContext, test } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { SmtpError } from "../../src/protocol/errors.js";
import type { SmtpServer, SmtpServerOptions } from "../../src/server/server.js";
import { freePort, RawClient, startRecordingServer, waitFor } from "../helpers/clients.js";

/** A server on 127.0.0.1, port 0 unless `options` say otherwise, stopped when the test ends. */
async function started(t: TestContext, options: SmtpServerOptions): Promise<SmtpServer> {
  return (await startRecordingServer(t, options)).server;
}

function portOf(server: SmtpServer, index = 0): number {
  const port = server.ports[index];
  assert.ok(port !== undefined && port > 0);
  return port;
}

/** A client through a trusted proxy: the PROXY v1 header naming `source`, then the greeting. */
async function proxiedClient(port: number, source: string): Promise<{ client: RawClient; greeting: string }> {
  const client = await RawClient.connect(port);
  const family = source.includes(":") ? "TCP6" : "TCP4";
  const destination = family === "TCP6" ? "2001:db8::25" : "192.0.2.1";
  client.write(`PROXY ${family} ${source} ${destination} 40000 25\r\n`);
  return { client, greeting: await client.reply() };
}

test("XCLIENT is judged on the client a PROXY header names, never on the proxy's own address", async (t) => {
  const server = await started(t, {
    proxyPorts: "0",
    proxyTrusted: "127.0.0.1",
    xclientTrusted: "127.0.0.1, 192.0.2.77",
    authMode: "required",
    authOverPlaintext: true,
    onAuth() {},
  });
  const port = portOf(server);
  // An Internet client behind the proxy: neither offered XCLIENT nor allowed to use it.
  const { client: outsider } = await proxiedClient(port, "203.0.113.9");
  t.after(() => outsider.close());
  assert.doesNotMatch(await outsider.command("EHLO outsider.test"), /XCLIENT|XFORWARD/);
  assert.match(await outsider.command("XCLIENT LOGIN=anyone ADDR=192.0.2.5"), /^550 5\.7\.0 /);
  assert.match(await outsider.command("XFORWARD ADDR=192.0.2.5"), /^550 5\.7\.0 /);
  assert.match(await outsider.command("MAIL FROM:<a@outsider.test>"), /^530 5\.7\.0 /);
  // A trusted front end behind the same proxy is.
  const { client: frontEnd } = await proxiedClient(port, "192.0.2.77");
  t.after(() => frontEnd.close());
  assert.match(await frontEnd.command("EHLO front.test"), /XCLIENT/);
  // The proxy's own health check (PROXY LOCAL) is the proxy talking for itself.
  const local = await RawClient.connect(port);
  t.after(() => local.close());
  local.write(Buffer.from("0d0a0d0a000d0a515549540a20000000", "hex")); // v2, LOCAL, no addresses
  assert.match(await local.reply(), /^220 /);
  assert.match(await local.command("EHLO proxy.test"), /XCLIENT/);
  // PROXY UNKNOWN: the proxy could not say who the client is, so it is nobody trusted.
  const unknown = await RawClient.connect(port);
  t.after(() => unknown.close());
  unknown.write("PROXY UNKNOWN\r\n");
  assert.match(await unknown.reply(), /^220 /);
  assert.doesNotMatch(await unknown.command("EHLO who.test"), /XCLIENT/);
});

test("maxConnectionsPerIp counts the client a PROXY header names (IPv6 by /64), not the proxy", async (t) => {
  const server = await started(t, { proxyPorts: "0", proxyTrusted: "127.0.0.1", maxConnectionsPerIp: 2 });
  const port = portOf(server);
  const open: RawClient[] = [];
  t.after(() => {
    for (const client of open) client.close();
  });
  const admit = async (source: string) => {
    const { client, greeting } = await proxiedClient(port, source);
    open.push(client);
    return greeting;
  };
  assert.match(await admit("203.0.113.9"), /^220 /);
  assert.match(await admit("203.0.113.9"), /^220 /);
  assert.match(await admit("203.0.113.9"), /^421 4\.7\.0 .*Too many connections from your address/);
  assert.match(await admit("198.51.100.7"), /^220 /, "another client behind the same proxy is let in");
  assert.match(await admit("2001:db8:1:2::1"), /^220 /);
  assert.match(await admit("2001:db8:1:2::ffff"), /^220 /);
  assert.match(await admit("2001:db8:1:2:aaaa::1"), /^421 4\.7\.0 /, "one /64 is one client");
  assert.match(await admit("2001:db8:1:3::1"), /^220 /);
});

/** Connects, retrying for up to `ms`, until the server greets with 220; the last reply otherwise. */
async function greetedWithin(port: number, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  let last = "";
  while (Date.now() < deadline) {
    const client = await RawClient.connect(port);
    last = (await client.nextReply(1000)) ?? "(nothing)";
    client.close();
    if (last.startsWith("220 ")) return last;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return last;
}

/** Connects over implicit TLS, retrying for up to `ms`, until the server greets with 220; "" otherwise. */
async function tlsGreetedWithin(port: number, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const greeting = await new Promise<string>((resolve) => {
      const socket = tlsConnect({ port, host: "127.0.0.1", rejectUnauthorized: false });
      const timer = setTimeout(() => finish(""), 1000);
      let received = "";
      const finish = (text: string) => {
        clearTimeout(timer);
        socket.destroy();
        resolve(text);
      };
      socket.on("data", (chunk: Buffer) => {
        received += chunk.toString("latin1");
        if (received.includes("\r\n")) finish(received);
      });
      socket.on("error", () => finish(""));
      socket.on("close", () => finish(received));
    });
    if (greeting.startsWith("220 ")) return greeting;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return "";
}

/** Opens `count` TCP connections to `port`; `then` acts on each once connected. */
async function connections(
  port: number,
  count: number,
  then: (socket: ReturnType<typeof tcpConnect>) => void,
) {
  await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<void>((resolve) => {
          const socket = tcpConnect({ port, host: "127.0.0.1" }, () => {
            then(socket);
            resolve();
          });
          socket.on("error", () => resolve());
        }),
    ),
  );
}

for (const tlsRequestCert of [false, true]) {
  const variant = tlsRequestCert ? " (client certificates requested)" : "";
  test(`clients that close during an implicit TLS handshake give their connection slots back at once${variant}`, async (t) => {
    const port = await freePort();
    await started(t, {
      ports: port,
      tlsPorts: String(port),
      tlsRequestCert,
      maxConnections: 5,
      maxProcessings: 5,
      ioCmdTimeout: 30_000,
    });
    // Twenty connect-and-close pairs: some send nothing, some half a ClientHello, then an orderly FIN.
    await connections(port, 10, (socket) => socket.end());
    await connections(port, 10, (socket) => socket.end(Buffer.from("160301020001", "hex")));
    assert.match(await tlsGreetedWithin(port, 5000), /^220 mx\.test ESMTP/);
  });
}

test("clients that close during a STARTTLS handshake give their connection slots back at once", async (t) => {
  const server = await started(t, {
    tlsMode: "optional",
    maxConnections: 5,
    maxProcessings: 5,
    ioCmdTimeout: 30_000,
  });
  const port = portOf(server);
  for (let i = 0; i < 5; i++) {
    const client = await RawClient.greeted(port);
    await client.command("EHLO client.test");
    assert.match(await client.command("STARTTLS"), /^220 /);
    client.socket.end(); // FIN, and no handshake
  }
  assert.match(await greetedWithin(port, 5000), /^220 /);
});

test("stop() does not wait for connections still in their PROXY header or TLS handshake", async (t) => {
  const proxyPort = await freePort();
  const tlsPort = await freePort();
  const server = await started(t, {
    ports: `${proxyPort}:${tlsPort}`,
    proxyPorts: String(proxyPort),
    tlsPorts: String(tlsPort),
    ioCmdTimeout: 30_000,
  });
  const silent: RawClient[] = [await RawClient.connect(proxyPort), await RawClient.connect(tlsPort)];
  t.after(() => {
    for (const client of silent) client.close();
  });
  const halfHeader = await RawClient.connect(proxyPort);
  silent.push(halfHeader);
  halfHeader.write("PROXY TCP4 203.0.113.9");
  await new Promise((resolve) => setTimeout(resolve, 100)); // accepted and waiting
  let timer: NodeJS.Timeout | undefined;
  const stopped = await Promise.race([
    server.stop().then(() => "stopped"),
    new Promise((resolve) => {
      timer = setTimeout(() => resolve("still stopping after 5 s"), 5000);
    }),
  ]);
  clearTimeout(timer);
  assert.equal(stopped, "stopped");
  for (const client of silent) await client.untilEnd(2000);
});

test("a connection slot frees when the session ends, though the client keeps its socket open", async (t) => {
  const server = await started(t, { maxConnections: 1, maxProcessings: 1 });
  const port = portOf(server);
  const first = await RawClient.greeted(port);
  t.after(() => first.close());
  assert.match(await first.command("QUIT"), /^221 /); // and the client does not hang up
  const second = await RawClient.connect(port);
  t.after(() => second.close());
  assert.match(await second.reply(), /^220 /);
});

test("greetingDelay: a silent client is greeted after the pause, one that talks first gets 554 at once", async (t) => {
  const server = await started(t, { greetingDelay: 400 });
  const port = portOf(server);
  const patient = await RawClient.connect(port);
  t.after(() => patient.close());
  const talker = await RawClient.connect(port);
  t.after(() => talker.close());
  talker.write("EHLO spambot.test\r\n");
  assert.match(await talker.untilEnd(), /^554 5\.5\.0 /);
  assert.equal(await patient.silentFor(200), true, "no greeting during the pause");
  assert.match(await patient.reply(), /^220 mx\.test ESMTP/);
  assert.match(await patient.command("EHLO patient.test"), /^250-/);
});

test("sockets kept open after the session ended do not pile up: beyond maxConnections of them, each is closed at once", async (t) => {
  const server = await started(t, { maxConnections: 2, maxProcessings: 2 });
  const port = portOf(server);
  const sockets: ReturnType<typeof tcpConnect>[] = [];
  t.after(() => {
    for (const socket of sockets) socket.destroy();
  });
  for (let i = 0; i < 5; i++) {
    // Half-open: the client reads the server's FIN after 221 but never hangs up itself.
    const socket = tcpConnect({ port, host: "127.0.0.1", allowHalfOpen: true });
    sockets.push(socket);
    let received = "";
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("latin1");
      if (received.startsWith("220 ") && !received.includes("QUIT sent")) {
        received += "QUIT sent";
        socket.write("QUIT\r\n");
      }
    });
    await waitFor(() => received.includes("221 "), "221");
  }
  // Two sockets linger (the server waits for their clients to hang up); the others were closed at once.
  await waitFor(() => server.connections === 2, "three sockets closed by the server", 2000);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(server.connections, 2);
});

/** A client from `localAddress` that never hangs up: it reads the server's FIN and keeps its socket open. */
async function stubbornClient(
  port: number,
  localAddress: string,
): Promise<{ socket: Socket; first: string }> {
  const socket = tcpConnect({ port, host: "127.0.0.1", localAddress, allowHalfOpen: true });
  socket.on("error", () => {});
  const [chunk] = (await once(socket, "data")) as [Buffer];
  return { socket, first: chunk.toString("latin1") };
}

test("a client refused for maxConnectionsPerIp that keeps its sockets open takes no slot from others", async (t) => {
  const server = await started(t, { maxConnections: 5, maxProcessings: 5, maxConnectionsPerIp: 2 });
  const port = portOf(server);
  const held: Socket[] = [];
  t.after(() => {
    for (const socket of held) socket.destroy();
  });
  const replies: string[] = [];
  for (let i = 0; i < 5; i++) {
    const { socket, first } = await stubbornClient(port, "127.0.0.2");
    held.push(socket);
    replies.push(first.slice(0, 3));
  }
  assert.deepEqual(replies, ["220", "220", "421", "421", "421"]);
  const other = await RawClient.connect(port, "127.0.0.1");
  t.after(() => other.close());
  assert.match(await other.reply(), /^220 /, "another address is served");
  // The refused sockets are closed by the server after a short wait, though their client never hangs up.
  const refused = (server as unknown as { refusals: { waiting: Set<Socket> } }).refusals.waiting;
  await waitFor(() => refused.size === 0, "the server to close the refused sockets", 5000);
});

test("stop() ends within its grace though refused and finished clients never hang up", async (t) => {
  const server = await started(t, {
    maxConnections: 2,
    maxProcessings: 2,
    maxConnectionsPerIp: 1,
  });
  const port = portOf(server);
  const held: Socket[] = [];
  t.after(() => {
    for (const socket of held) socket.destroy();
  });
  const session = await stubbornClient(port, "127.0.0.2"); // served, and will get the stop's 421
  const refusedPerIp = await stubbornClient(port, "127.0.0.2");
  const finished = await stubbornClient(port, "127.0.0.3");
  finished.socket.write("QUIT\r\n"); // gets 221, then keeps its socket open
  await once(finished.socket, "end");
  const second = await stubbornClient(port, "127.0.0.5");
  const refusedBusy = await stubbornClient(port, "127.0.0.4");
  const all = [session, refusedPerIp, finished, second, refusedBusy];
  held.push(...all.map((client) => client.socket));
  assert.deepEqual(
    all.map((client) => client.first.slice(0, 3)),
    ["220", "421", "220", "220", "421"],
  );
  const startedAt = Date.now();
  await server.stop();
  const took = Date.now() - startedAt;
  assert.ok(took < 4000, `stop() took ${took} ms`);
});

test("stop() does not wait for a client in an AUTH exchange, in a STARTTLS handshake, or not yet greeted", async (t) => {
  let slowConnects = 0;
  const server = await started(t, {
    tlsMode: "optional",
    authMode: "optional",
    authOverPlaintext: true,
    async onConnect() {
      if (slowConnects++ === 2) await new Promise((resolve) => setTimeout(resolve, 1500));
    },
  });
  const port = portOf(server);
  const inAuth = await RawClient.greeted(port);
  await inAuth.command("EHLO client.test");
  assert.match(await inAuth.command("AUTH LOGIN"), /^334 /);
  const inTls = await RawClient.greeted(port);
  await inTls.command("EHLO client.test");
  assert.match(await inTls.command("STARTTLS"), /^220 /); // and no handshake follows
  const notGreeted = await RawClient.connect(port); // its onConnect takes 1.5 s
  t.after(() => {
    for (const client of [inAuth, inTls, notGreeted]) client.close();
  });
  await new Promise((resolve) => setTimeout(resolve, 100));
  const startedAt = Date.now();
  await server.stop(); // graceful, 10 s for transactions: none of these is one
  const took = Date.now() - startedAt;
  assert.ok(took < 3000, `stop() took ${took} ms`);
  assert.match(await inAuth.untilEnd(), /^421 4\.3\.2 /);
  assert.equal(await inTls.untilEnd(), "", "no plaintext inside the handshake");
  assert.match(await notGreeted.untilEnd(), /^421 4\.3\.2 /, "a 421, not a greeting, once the stop began");
});

test("clients a proxy cannot name (PROXY UNKNOWN) are counted apart from the proxy's own direct clients", async (t) => {
  const direct = await freePort();
  const proxied = await freePort();
  await started(t, {
    ports: `${direct}:${proxied}`,
    proxyPorts: String(proxied),
    maxConnectionsPerIp: 1,
    maxAuthFailuresPerIp: 2,
    authMode: "optional",
    authOverPlaintext: true,
    onAuth(_ctx, _authz, user, secret) {
      if (secret === "right") return user;
      throw new SmtpError(535, "Authentication credentials invalid", "5.7.8");
    },
  });
  const open: RawClient[] = [];
  t.after(() => {
    for (const client of open) client.close();
  });
  const unnamed = async () => {
    const client = await RawClient.connect(proxied);
    open.push(client);
    client.write("PROXY UNKNOWN\r\n");
    return client;
  };
  const first = await unnamed();
  assert.match(await first.reply(), /^220 /);
  const directClient = await RawClient.connect(direct);
  open.push(directClient);
  assert.match(
    await directClient.reply(),
    /^220 /,
    "the proxy's own address is not the unnamed clients' count",
  );
  const second = await unnamed();
  assert.match(await second.reply(), /^421 4\.7\.0 /, "the unnamed clients share one count");
  // Their AUTH failures are counted apart too: the direct client can still authenticate.
  await first.command("EHLO unnamed.test");
  const wrong = `AUTH PLAIN ${Buffer.from("\0alice\0wrong").toString("base64")}`;
  assert.match(await first.command(wrong), /^535 /);
  assert.match(await first.command(wrong), /^535 /);
  await directClient.command("EHLO direct.test");
  const right = `AUTH PLAIN ${Buffer.from("\0alice\0right").toString("base64")}`;
  assert.match(await directClient.command(right), /^235 /);
});
