/**
 * TLS material given in memory instead of files: a certificate and key as PEM strings or Buffers, a
 * ready-made SecureContext, an SNICallback; served to real TLS clients over STARTTLS and implicit TLS,
 * what reload() does with them, and the contradictory combinations refused at construction.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { connect } from "node:net";
import { type TestContext, test } from "node:test";
import tls from "node:tls";
import type { SmtpServerOptions } from "../../src/server/server.js";
import { SmtpServer } from "../../src/server/server.js";
import { generateSelfSignedCertificate } from "../../src/tls/certificates.js";
import { freePort, startTestServer } from "../helpers/clients.js";

async function certificate(cn: string) {
  const pem = await generateSelfSignedCertificate({ cn, san: [cn] });
  return { ...pem, serial: new X509Certificate(pem.cert).serialNumber };
}

/** Reads until a final reply line ("250 ...") arrives; resolves with everything read. */
function reply(socket: tls.TLSSocket | import("node:net").Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const onData = (chunk: Buffer) => {
      text += chunk.toString("latin1");
      if (/(^|\r\n)\d{3} [^\r\n]*\r\n$/.test(text)) {
        socket.off("data", onData);
        resolve(text);
      }
    };
    socket.on("data", onData);
    socket.once("error", reject);
  });
}

interface Secured {
  serial: string;
  authorized: boolean;
  ehlo: string;
}

/** STARTTLS on `port`, verifying the server's certificate against `ca` for `servername`. */
async function startTls(port: number, ca: string, servername: string): Promise<Secured> {
  const raw = connect({ port, host: "127.0.0.1" });
  await reply(raw);
  raw.write("EHLO client.test\r\n");
  assert.match(await reply(raw), /STARTTLS/);
  raw.write("STARTTLS\r\n");
  assert.match(await reply(raw), /^220 /);
  return secure(tls.connect({ socket: raw, ca, servername }), false);
}

/** Implicit TLS on `port`: the greeting comes encrypted. */
function implicitTls(port: number, ca: string, servername: string): Promise<Secured> {
  return secure(tls.connect({ port, host: "127.0.0.1", ca, servername }), true);
}

async function secure(socket: tls.TLSSocket, greeted: boolean): Promise<Secured> {
  const greeting = greeted ? reply(socket) : Promise.resolve("");
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("error", reject);
  });
  if (greeted) assert.match(await greeting, /^220 /);
  socket.write("EHLO client.test\r\n");
  const ehlo = await reply(socket);
  const result = {
    serial: socket.getPeerX509Certificate()?.serialNumber ?? "",
    authorized: socket.authorized,
    ehlo,
  };
  socket.destroy();
  return result;
}

test("tlsCert and tlsKey in memory (a string and a Buffer): served over STARTTLS and implicit TLS, verified by the client", async (t) => {
  const mx = await certificate("mx.test");
  const options: SmtpServerOptions = { tlsCert: mx.cert, tlsKey: Buffer.from(mx.key) };
  const { server, port } = await startTestServer(t, { ...options, tlsMode: "optional" });
  assert.equal(server.tls?.certificate?.serialNumber, mx.serial);
  assert.equal(server.tls?.generated, false);
  const overStartTls = await startTls(port, mx.cert, "mx.test");
  assert.deepEqual([overStartTls.serial, overStartTls.authorized], [mx.serial, true]);
  assert.match(overStartTls.ehlo, /^250[- ]mx\.test/);

  const tlsPort = await freePort();
  await startTestServer(t, { ...options, ports: tlsPort, tlsPorts: String(tlsPort) });
  const implicit = await implicitTls(tlsPort, mx.cert, "mx.test");
  assert.deepEqual([implicit.serial, implicit.authorized], [mx.serial, true]);
});

test("reload() keeps in-memory material as given (it has no file to read again) and says so", async (t) => {
  const mx = await certificate("mx.test");
  const notices: string[] = [];
  const { server, port } = await startTestServer(t, {
    tlsCert: Buffer.from(mx.cert),
    tlsKey: mx.key,
    tlsMode: "optional",
    loggerSeverity: "info",
    logger: { debug() {}, info: (message) => notices.push(message), warn() {}, error() {} },
  });
  const before = server.tls?.activeContext;
  await server.tls?.reload();
  assert.equal(server.tls?.certificate?.serialNumber, mx.serial);
  assert.notEqual(server.tls?.activeContext, before, "the contexts are made again, from the same PEM");
  assert.ok(
    notices.some((notice) => notice.includes(`serial ${mx.serial}`) && notice.includes("kept as it is")),
    notices.join("\n"),
  );
  const after = await startTls(port, mx.cert, "mx.test");
  assert.deepEqual([after.serial, after.authorized], [mx.serial, true]);
});

test("tlsSecureContext: a ready-made context is served as it is, and reload() keeps it", async (t) => {
  const mx = await certificate("mx.test");
  const context = tls.createSecureContext({ cert: mx.cert, key: mx.key });
  const { server, port } = await startTestServer(t, { tlsSecureContext: context, tlsMode: "optional" });
  assert.equal(server.tls?.activeContext, context);
  assert.equal(server.tls?.certificate, undefined, "mailgate cannot read a certificate out of a context");
  const secured = await startTls(port, mx.cert, "mx.test");
  assert.deepEqual([secured.serial, secured.authorized], [mx.serial, true]);
  await server.tls?.reload();
  assert.equal(server.tls?.activeContext, context);
  assert.throws(() => server.tls?.serverOptions(), /given ready-made \(tlsSecureContext\)/);
});

test("tlsSniCallback chooses a context per name; without a choice the main certificate is served", async (t) => {
  const [mx, one, two] = await Promise.all([
    certificate("mx.test"),
    certificate("one.test"),
    certificate("two.test"),
  ]);
  const contexts = new Map([
    ["one.test", tls.createSecureContext({ cert: one.cert, key: one.key })],
    ["two.test", tls.createSecureContext({ cert: two.cert, key: two.key })],
  ]);
  const asked: string[] = [];
  const { port } = await startTestServer(t, {
    tlsCert: mx.cert,
    tlsKey: mx.key,
    tlsMode: "optional",
    tlsSniCallback: (servername, callback) => {
      asked.push(servername);
      callback(null, contexts.get(servername));
    },
  });
  const ca = [mx.cert, one.cert, two.cert].join("");
  for (const [name, expected] of [
    ["one.test", one],
    ["two.test", two],
    ["mx.test", mx],
  ] as const) {
    const secured = await startTls(port, ca, name);
    assert.deepEqual([secured.serial, secured.authorized], [expected.serial, true], name);
  }
  assert.deepEqual(asked, ["one.test", "two.test", "mx.test"]);
});

test("tlsSniCallback with client certificates requested: the engine of the generation serves every name", async (t) => {
  const [mx, one] = await Promise.all([certificate("mx.test"), certificate("one.test")]);
  const oneContext = tls.createSecureContext({ cert: one.cert, key: one.key });
  const { port } = await startTestServer(t, {
    tlsCert: mx.cert,
    tlsKey: mx.key,
    tlsMode: "optional",
    tlsRequestCert: true,
    tlsSniCallback: (servername, callback) =>
      callback(null, servername === "one.test" ? oneContext : undefined),
  });
  for (let round = 0; round < 3; round++) {
    const byName = await startTls(port, one.cert, "one.test");
    assert.equal(byName.serial, one.serial);
    const main = await startTls(port, mx.cert, "mx.test");
    assert.equal(main.serial, mx.serial);
  }
});

/** `new SmtpServer(options)` throws one sentence matching every pattern. */
function refused(t: TestContext, options: SmtpServerOptions, ...patterns: RegExp[]): void {
  t.diagnostic(Object.keys(options).join(" + "));
  assert.throws(
    () => new SmtpServer({ ports: 0, ...options }),
    (error: Error) => {
      for (const pattern of patterns) assert.match(error.message, pattern);
      return true;
    },
  );
}

test("contradictory TLS material is refused at construction, naming the options", async (t) => {
  const mx = await certificate("mx.test");
  const context = tls.createSecureContext({ cert: mx.cert, key: mx.key });
  refused(
    t,
    { tlsCert: mx.cert, tlsKey: mx.key, tlsCertPath: "/c.pem", tlsKeyPath: "/k.pem" },
    /tlsCertPath and tlsCert\b/,
    /not both/,
  );
  refused(
    t,
    { tlsCert: mx.cert, tlsKeyPath: "/k.pem" },
    /tlsCert\/tlsKey and tlsCertPath\/tlsKeyPath/,
    /the same way/,
  );
  refused(t, { tlsCa: mx.cert, tlsCaPath: "/ca.pem" }, /tlsCaPath and tlsCa\b/, /not both/);
  refused(t, { tlsCert: mx.cert }, /^Invalid option tlsCert: give tlsKey with it/);
  refused(t, { tlsKey: mx.key }, /^Invalid option tlsKey: give tlsCert with it/);
  refused(
    t,
    { tlsCert: 42 as unknown as string, tlsKey: mx.key },
    /^Invalid option tlsCert: it accepts PEM text/,
  );
  refused(t, { tlsCa: [] }, /^Invalid option tlsCa:/);
  refused(
    t,
    { tlsSniCallback: "one.test" as unknown as () => void },
    /^Invalid option tlsSniCallback: it must be a function/,
  );
  refused(
    t,
    { tlsSecureContext: {} as tls.SecureContext },
    /^Invalid option tlsSecureContext: give a context made by tls\.createSecureContext/,
  );
  for (const [name, value] of [
    ["tlsCert", mx.cert],
    ["tlsCertPath", "/c.pem"],
    ["tlsCaPath", "/ca.pem"],
    ["tlsCa", mx.cert],
    ["tlsCertCn", "mx.test"],
    ["tlsCiphers", "ECDHE-RSA-AES128-GCM-SHA256"],
    ["tlsMinVersion", "TLSv1.3"],
    ["tlsPreset", "broad"],
    ["tlsTicketKeyRotation", 60_000],
    ["tlsRequestCert", true],
  ] as const) {
    const pair =
      name === "tlsCert" ? { tlsKey: mx.key } : name === "tlsCertPath" ? { tlsKeyPath: "/k.pem" } : {};
    refused(
      t,
      { tlsSecureContext: context, [name]: value, ...pair } as SmtpServerOptions,
      new RegExp(`^Invalid options tlsSecureContext and [^:]*\\b${name}\\b`),
      /served as it is/,
    );
  }
  // Material for no TLS at all is still checked: the mistake would surface only when TLS is turned on.
  refused(t, { tlsMode: "forbidden", tlsCert: mx.cert }, /tlsCert: give tlsKey/);
});
