/** PROXY protocol v1/v2 on listeners that opt in: trusted proxies only, proxied addresses, no bytes lost. */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { Duplex } from "node:stream";
import { describe, type TestContext, test } from "node:test";
import { connect as tlsConnect } from "node:tls";
import type { SessionContext } from "../../src/protocol/context.js";
import { SmtpServer, type SmtpServerOptions } from "../../src/server/server.js";
import { freePort, RawClient, silentLogger } from "../helpers/clients.js";

async function proxied(t: TestContext, options: SmtpServerOptions = {}) {
  const seen: SessionContext["server"][] = [];
  const base: SmtpServerOptions = { hostname: "mx.test", logger: silentLogger, loggerSeverity: "fatal" };
  const port = await freePort();
  const server = new SmtpServer({
    ...base,
    ports: port,
    proxyPorts: String(port),
    onConnect(ctx) {
      seen.push({ ...ctx.server });
    },
    ...options,
  });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  return { port, seen };
}

function v2Header(): Buffer {
  const signature = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const authority = Buffer.from("mail.example.test");
  const tlv = Buffer.concat([Buffer.from([0x02, 0, authority.length]), authority]);
  const addresses = Buffer.from([198, 51, 100, 7, 192, 0, 2, 1, 0x30, 0x39, 0x00, 0x19]); // :12345 -> :25
  const length = Buffer.alloc(2);
  length.writeUInt16BE(addresses.length + tlv.length);
  return Buffer.concat([signature, Buffer.from([0x21, 0x11]), length, addresses, tlv]);
}

describe("PROXY protocol", () => {
  test("v1: hooks see the proxied client, and the session goes on through the proxy", async (t) => {
    const { port, seen } = await proxied(t);
    const client = await RawClient.connect(port);
    client.write("PROXY TCP4 203.0.113.9 192.0.2.1 40000 25\r\n");
    assert.match(await client.reply(), /^220 /);
    assert.match(await client.command("EHLO behind.proxy"), /^250-mx\.test/);
    assert.equal(seen[0]?.remoteIp, "203.0.113.9");
    assert.equal(seen[0]?.remotePort, 40000);
    assert.equal(seen[0]?.localPort, 25);
    client.close();
  });

  test("bytes that came with the header are not lost: a client talking before the greeting is refused", async (t) => {
    const { port } = await proxied(t);
    const client = await RawClient.connect(port);
    client.write("PROXY TCP4 203.0.113.9 192.0.2.1 40000 25\r\nEHLO too.early\r\n");
    assert.match(await client.untilEnd(), /^554 5\.5\.0 /);
  });

  test("v2 with an AUTHORITY TLV", async (t) => {
    const { port, seen } = await proxied(t);
    const client = await RawClient.connect(port);
    client.write(v2Header());
    assert.match(await client.reply(), /^220 /);
    assert.equal(seen[0]?.remoteIp, "198.51.100.7");
    assert.equal(seen[0]?.proxy?.tlvs.authority, "mail.example.test");
    client.close();
  });

  test("a malformed header, an untrusted peer, or a slow header: closed without a reply", async (t) => {
    const { port } = await proxied(t, { ioCmdTimeout: 300 });
    const malformed = await RawClient.connect(port);
    malformed.write("EHLO not.a.proxy\r\n");
    assert.equal(await malformed.untilEnd(), "");
    const slow = await RawClient.connect(port);
    slow.write("PROXY TCP4 203.0.113.9");
    assert.equal(await slow.untilEnd(2000), "");
    const untrusted = await proxied(t, { proxyTrusted: "10.0.0.1" });
    const client = await RawClient.connect(untrusted.port);
    client.write("PROXY TCP4 203.0.113.9 192.0.2.1 40000 25\r\n");
    assert.equal(await client.untilEnd(), "");
    assert.equal(untrusted.seen.length, 0);
  });

  test("a bad trusted list is refused at construction", () => {
    assert.throws(() => new SmtpServer({ proxyTrusted: "10.0.0.0/99" }), /Invalid option proxyTrusted/);
  });

  test("PROXY then implicit TLS, with the ClientHello in the same packet as the header", async (t) => {
    const port = await freePort();
    const seen: string[] = [];
    const server = new SmtpServer({
      ports: port,
      proxyPorts: String(port),
      tlsPorts: String(port),
      hostname: "mx.test",
      logger: silentLogger,
      loggerSeverity: "fatal",
      onConnect(ctx) {
        seen.push(`${ctx.server.remoteIp} ${ctx.server.tls?.protocol}`);
      },
    });
    await server.start();
    t.after(() => server.stop({ gracefully: false }));
    const raw = connect(port, "127.0.0.1");
    await new Promise((resolve) => raw.once("connect", resolve));
    // The first write of the TLS client (its ClientHello) goes out glued to the PROXY header.
    let first = true;
    const glued = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        const header = Buffer.from("PROXY TCP4 203.0.113.9 192.0.2.1 40000 465\r\n");
        raw.write(first ? Buffer.concat([header, chunk]) : chunk, callback);
        first = false;
      },
    });
    raw.on("data", (d) => glued.push(d));
    raw.on("end", () => glued.push(null));
    const secured = tlsConnect({ socket: glued, rejectUnauthorized: false });
    let received = "";
    secured.on("data", (d) => {
      received += d;
    });
    while (!received.includes("\r\n")) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.match(received, /^220 mx\.test ESMTP/);
    assert.match(seen[0] ?? "", /^203\.0\.113\.9 TLSv1\.[23]$/);
    secured.destroy();
    raw.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(server.connections, 0, "the connection is released");
  });
});
