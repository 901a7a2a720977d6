/**
 * TlsContextProvider and upgradeToTls over loopback: generated and file certificates, SNI, reload,
 * client certificates (recorded or verified), STARTTLS, handshake errors and the timeout.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { copyFile, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import tls from "node:tls";
import { type TlsContextOptions, TlsContextProvider, type TlsSessionInfo } from "../../src/tls/context.js";
import { TlsHandshakeError, upgradeToTls } from "../../src/tls/upgrade.js";
import {
  type CertFiles,
  checkIp,
  handshake,
  listen,
  tcpServer,
  tempDir,
  writeCertificate,
} from "./tls-helpers.js";

interface Served {
  port: number;
  sessions: TlsSessionInfo[];
  errors: Error[];
}

/** A TCP listener that performs implicit TLS with upgradeToTls on every connection. */
async function serveImplicit(
  t: TestContext,
  provider: TlsContextProvider,
  handshakeTimeout?: number,
): Promise<Served> {
  const served: Served = { port: 0, sessions: [], errors: [] };
  served.port = await listen(
    t,
    tcpServer((socket) => {
      socket.on("error", () => {});
      upgradeToTls(socket, provider, handshakeTimeout === undefined ? {} : { handshakeTimeout }).then(
        (secured) => {
          secured.on("error", () => {});
          served.sessions.push(provider.describe(secured));
          secured.end("hello\r\n");
        },
        (error: Error) => served.errors.push(error),
      );
    }),
  );
  return served;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test("a generated certificate: warning 'for testing only', exposed context and certificate, handshakes", async (t) => {
  const logs: [string, string][] = [];
  const provider = await TlsContextProvider.create({
    cn: "localhost.local",
    san: ["127.0.0.1", "::1"],
    logger: (severity, message) => logs.push([severity, message]),
  });
  assert.equal(provider.generated, true);
  assert.equal(logs.length, 1);
  assert.equal(logs[0]?.[0], "warn");
  assert.match(
    logs[0]?.[1] ?? "",
    /self-signed certificate was generated in memory .*CN=localhost\.local.*for testing only/,
  );
  assert.equal(provider.warning, logs[0]?.[1]);
  assert.equal(provider.certificate?.subject, "CN=localhost.local");
  assert.match(provider.certificate?.subjectAltName ?? "", /IP Address:127\.0\.0\.1/);
  assert.ok(provider.activeContext instanceof Object && "context" in provider.activeContext);
  assert.deepEqual(provider.settings, { ciphers: provider.settings.ciphers, minVersion: "TLSv1.2" });

  const served = await serveImplicit(t, provider);
  const byName = await handshake(served.port, { ca: provider.certificatePem, servername: "localhost.local" });
  assert.ok(byName.ok, JSON.stringify(byName));
  assert.equal(byName.serial, provider.certificate?.serialNumber);
  const byIp = await handshake(served.port, {
    ca: provider.certificatePem,
    checkServerIdentity: checkIp("127.0.0.1"),
  });
  assert.ok(byIp.ok, JSON.stringify(byIp));
  await until(() => served.sessions.length === 2, "two sessions");
  assert.equal(served.sessions[0]?.protocol, "TLSv1.3");
  assert.equal(served.sessions[0]?.servername, "localhost.local");
  assert.equal(served.sessions[0]?.peerCertificate, undefined);
  assert.equal(served.sessions[0]?.verified, false);

  // The default preset through the provider: TLS 1.2 yes, TLS 1.1 no.
  const tls12 = await handshake(served.port, {
    ca: provider.certificatePem,
    servername: "localhost.local",
    maxVersion: "TLSv1.2",
  });
  assert.ok(tls12.ok && tls12.protocol === "TLSv1.2");
  const tls11 = await handshake(served.port, {
    ca: provider.certificatePem,
    servername: "localhost.local",
    maxVersion: "TLSv1.1",
    minVersion: "TLSv1.1",
    ciphers: "DEFAULT:@SECLEVEL=0",
  });
  assert.equal(tls11.ok, false);
  await until(() => served.errors.length === 1, "the refused handshake");
  assert.ok(served.errors[0] instanceof TlsHandshakeError);
});

test("serverOptions() suits tls.createServer for an implicit-TLS listener", async (t) => {
  const provider = await TlsContextProvider.create({ preset: "advanced" });
  const port = await listen(
    t,
    tls.createServer(provider.serverOptions(), (socket) => socket.end()),
  );
  const result = await handshake(port, {
    ca: provider.certificatePem,
    servername: "localhost.local",
    maxVersion: "TLSv1.2",
  });
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.serial, provider.certificate?.serialNumber);
});

test("invalid options fail create() with one sentence", async (t) => {
  const dir = await tempDir(t);
  const files = await writeCertificate(dir, "server", { cn: "mx.example.com" });
  await assert.rejects(
    TlsContextProvider.create({ certPath: files.certPath }),
    /^TypeError: Invalid options tlsCertPath and tlsKeyPath: give both \(certificate and key\) or neither\.$/,
  );
  await assert.rejects(TlsContextProvider.create({ ciphers: "NOPE" }), /^TypeError: Invalid tlsCiphers/);
  await assert.rejects(
    TlsContextProvider.create({ minVersion: "TLSv2" }),
    /^RangeError: Invalid tlsMinVersion/,
  );
  await assert.rejects(
    TlsContextProvider.create({ certPath: join(dir, "none.crt"), keyPath: files.keyPath }),
    /Cannot read the TLS certificate file/,
  );
  await assert.rejects(
    TlsContextProvider.create({ caPath: join(dir, "none-ca.pem") }),
    /Cannot read the CA file for client certificates .*tlsCaPath/,
  );
  await assert.rejects(TlsContextProvider.create({ caPath: files.keyPath }), /holds no PEM certificate/);
  await assert.rejects(
    TlsContextProvider.create({ caPath: files.certPath, requestCert: false }),
    /needs tlsRequestCert/,
  );
  const provider = await TlsContextProvider.create({ certPath: files.certPath, keyPath: files.keyPath });
  assert.equal(provider.generated, false);
  assert.equal(provider.warning, undefined);
  await assert.rejects(
    provider.addSniCertificate("bad host!", files.certPath, files.keyPath),
    /Invalid SNI hostname/,
  );
});

test("SNI picks the certificate for each hostname, exact before wildcard, else the default", async (t) => {
  const dir = await tempDir(t);
  const main = await writeCertificate(dir, "main", { cn: "mx.example.com" });
  const one = await writeCertificate(dir, "one", { cn: "mail.one.example" });
  const wild = await writeCertificate(dir, "wild", { cn: "*.two.example" });
  const exact = await writeCertificate(dir, "exact", { cn: "special.two.example" });
  const provider = await TlsContextProvider.create({
    certPath: main.certPath,
    keyPath: main.keyPath,
    sniCertificates: [{ hostname: "Mail.One.Example", certPath: one.certPath, keyPath: one.keyPath }],
  });
  await provider.addSniCertificate("*.two.example", wild.certPath, wild.keyPath);
  await provider.addSniCertificate("special.two.example", exact.certPath, exact.keyPath);
  assert.deepEqual(
    [...provider.sniCertificates.keys()],
    ["mail.one.example", "*.two.example", "special.two.example"],
  );
  const served = await serveImplicit(t, provider);
  const ca = [main.cert, one.cert, wild.cert, exact.cert].join("");

  const cases: [string | undefined, CertFiles][] = [
    ["mail.one.example", one],
    ["MAIL.ONE.EXAMPLE", one],
    ["a.two.example", wild],
    ["special.two.example", exact],
    ["mx.example.com", main],
    ["a.b.two.example", main], // a wildcard covers one label only
    [undefined, main],
  ];
  for (const [servername, expected] of cases) {
    const result = await handshake(
      served.port,
      servername === undefined
        ? { ca, checkServerIdentity: () => undefined }
        : { ca, servername, checkServerIdentity: () => undefined },
    );
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.serial, expected.serial, `certificate for ${servername}`);
  }
  assert.equal(await provider.removeSniCertificate("special.two.example"), true);
  const afterRemoval = await handshake(served.port, { ca, servername: "special.two.example" });
  assert.ok(afterRemoval.ok && afterRemoval.serial === wild.serial);
  // A name verified end to end (chain and hostname):
  const verified = await handshake(served.port, { ca: one.cert, servername: "mail.one.example" });
  assert.ok(verified.ok, JSON.stringify(verified));
});

test("reload swaps certificates for new connections; a failed reload keeps the old ones", async (t) => {
  const dir = await tempDir(t);
  const first = await writeCertificate(dir, "first", { cn: "localhost.local" });
  // Distinct subjects: OpenSSL finds a trust anchor by subject name.
  const second = await writeCertificate(dir, "second", { cn: "renewed.local", san: ["localhost.local"] });
  const sniFirst = await writeCertificate(dir, "sni-first", { cn: "sni.example" });
  const sniSecond = await writeCertificate(dir, "sni-second", {
    cn: "renewed.sni.example",
    san: ["sni.example"],
  });
  const certPath = join(dir, "live.crt");
  const keyPath = join(dir, "live.key");
  const sniCert = join(dir, "live-sni.crt");
  const sniKey = join(dir, "live-sni.key");
  await copyFile(first.certPath, certPath);
  await copyFile(first.keyPath, keyPath);
  await copyFile(sniFirst.certPath, sniCert);
  await copyFile(sniFirst.keyPath, sniKey);
  const logs: string[] = [];
  const provider = await TlsContextProvider.create({
    certPath,
    keyPath,
    sniCertificates: [{ hostname: "sni.example", certPath: sniCert, keyPath: sniKey }],
    logger: (_severity, message) => logs.push(message),
  });
  const served = await serveImplicit(t, provider);
  const implicitPort = await listen(
    t,
    tls.createServer(provider.serverOptions(), (s) => s.end()),
  );
  const ca = [first.cert, second.cert, sniFirst.cert, sniSecond.cert].join("");
  const probe = async (port: number, servername: string) => {
    const result = await handshake(port, { ca, servername });
    assert.ok(result.ok, JSON.stringify(result));
    return result.serial;
  };
  assert.equal(await probe(served.port, "localhost.local"), first.serial);
  assert.equal(await probe(served.port, "sni.example"), sniFirst.serial);

  await copyFile(second.certPath, certPath);
  await copyFile(second.keyPath, keyPath);
  await copyFile(sniSecond.certPath, sniCert);
  await copyFile(sniSecond.keyPath, sniKey);
  await provider.reload();
  assert.match(logs.at(-1) ?? "", new RegExp(`reloaded; active certificate serial ${second.serial}`));
  assert.equal(provider.certificate?.serialNumber, second.serial);
  assert.equal(await probe(served.port, "localhost.local"), second.serial);
  assert.equal(await probe(served.port, "sni.example"), sniSecond.serial);
  // A tls.Server built before the reload keeps its context for clients without SNI, but SNICallback
  // gives clients that send SNI the new certificate at once.
  assert.equal(await probe(implicitPort, "localhost.local"), second.serial);

  // A half-written renewal (new certificate, old key): the reload fails and nothing changes.
  await copyFile(first.certPath, certPath);
  await assert.rejects(
    provider.reload(),
    /^Error: Reloading the TLS certificates failed, so the previous ones stay in use: The TLS private key in .* does not match/,
  );
  assert.equal(provider.certificate?.serialNumber, second.serial);
  assert.equal(await probe(served.port, "localhost.local"), second.serial);
  // A broken SNI file also keeps everything.
  await copyFile(second.certPath, certPath);
  await writeFile(sniCert, "garbage");
  await assert.rejects(
    provider.reload(),
    /previous ones stay in use: The TLS certificate file .* holds no PEM certificate/,
  );
  assert.equal(await probe(served.port, "sni.example"), sniSecond.serial);
});

test("reload of a generated certificate makes a new one", async () => {
  const provider = await TlsContextProvider.create({});
  const before = provider.certificate?.serialNumber;
  const context = provider.activeContext;
  await Promise.all([provider.reload(), provider.reload()]);
  assert.notEqual(provider.certificate?.serialNumber, before);
  assert.notEqual(provider.activeContext, context);
});

/** Client certificate fixtures: two clients and a server, with the first client's certificate as CA. */
async function clientFixtures(t: TestContext) {
  const dir = await tempDir(t);
  return {
    alice: await writeCertificate(dir, "alice", { cn: "alice.relay.example" }),
    mallory: await writeCertificate(dir, "mallory", { cn: "mallory.example" }),
  };
}

test("client certificates recorded only: requested, exposed, never verified nor required", async (t) => {
  const { alice } = await clientFixtures(t);
  const provider = await TlsContextProvider.create({ requestCert: true });
  assert.equal(provider.rejectUnauthorized, false);
  const served = await serveImplicit(t, provider);
  const ca = provider.certificatePem;
  for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as const) {
    const withCert = await handshake(served.port, {
      ca,
      servername: "localhost.local",
      cert: alice.cert,
      key: alice.key,
      maxVersion,
    });
    assert.ok(withCert.ok, JSON.stringify(withCert));
  }
  const without = await handshake(served.port, { ca, servername: "localhost.local" });
  assert.ok(without.ok);
  await until(() => served.sessions.length === 3, "three sessions");
  const [first, , third] = served.sessions;
  assert.equal(first?.peerCertificate?.serialNumber, alice.serial);
  assert.equal(first?.peerCertificate?.subject, "CN=alice.relay.example");
  assert.equal(first?.verified, false);
  assert.equal(first?.verifyError, "NO_CA_CONFIGURED");
  assert.equal(third?.peerCertificate, undefined);
  assert.equal(third?.verifyError, "NO_PEER_CERTIFICATE");
});

test("client certificates verified against a CA file: trusted, refused, or recorded as unverified", async (t) => {
  const { alice, mallory } = await clientFixtures(t);
  const strict = await TlsContextProvider.create({ caPath: alice.certPath });
  assert.equal(strict.requestCert, true);
  assert.equal(strict.rejectUnauthorized, true);
  const served = await serveImplicit(t, strict);
  const ca = strict.certificatePem;
  const base = { ca, servername: "localhost.local" };

  const good = await handshake(served.port, { ...base, cert: alice.cert, key: alice.key });
  assert.ok(good.ok, JSON.stringify(good));
  await until(() => served.sessions.length === 1, "alice's session");
  assert.equal(served.sessions[0]?.verified, true);
  assert.equal(served.sessions[0]?.verifyError, undefined);
  assert.equal(served.sessions[0]?.peerCertificate?.serialNumber, alice.serial);

  await handshake(served.port, { ...base, cert: mallory.cert, key: mallory.key });
  await handshake(served.port, base);
  await until(() => served.errors.length === 2, "two refusals");
  assert.match(served.errors[0]?.message ?? "", /^The client certificate was refused \((?!no client)/);
  assert.match(
    served.errors[1]?.message ?? "",
    /^The client certificate was refused \(no client certificate\)\.$/,
  );
  assert.equal(served.sessions.length, 1);

  const lenient = await TlsContextProvider.create({ caPath: alice.certPath, rejectUnauthorized: false });
  const lenientServed = await serveImplicit(t, lenient);
  const base2 = { ca: lenient.certificatePem, servername: "localhost.local" };
  assert.ok((await handshake(lenientServed.port, { ...base2, cert: mallory.cert, key: mallory.key })).ok);
  assert.ok((await handshake(lenientServed.port, { ...base2, cert: alice.cert, key: alice.key })).ok);
  await until(() => lenientServed.sessions.length === 2, "two lenient sessions");
  const [unverified, verified] = lenientServed.sessions;
  assert.equal(unverified?.verified, false);
  assert.ok(unverified?.verifyError && unverified.verifyError !== "NO_PEER_CERTIFICATE");
  assert.equal(unverified?.peerCertificate?.serialNumber, mallory.serial);
  assert.equal(verified?.verified, true);
});

/** Reads from a plain socket until `pattern` has arrived. */
async function readUntil(socket: Socket, pattern: RegExp): Promise<string> {
  let text = "";
  while (!pattern.test(text)) {
    const [chunk] = (await once(socket, "data")) as [Buffer];
    text += chunk.toString("latin1");
  }
  return text;
}

test("STARTTLS: the upgrade of an open plaintext connection, then the dialogue goes on encrypted", async (t) => {
  const provider = await TlsContextProvider.create({});
  const transcript: string[] = [];
  const port = await listen(
    t,
    tcpServer((socket) => {
      socket.on("error", () => {});
      socket.write("220 mx ready\r\n");
      let buffer = "";
      const onData = (chunk: Buffer) => {
        buffer += chunk.toString("latin1");
        if (!buffer.includes("\r\n")) return;
        const line = buffer.slice(0, buffer.indexOf("\r\n"));
        transcript.push(line);
        // Stop reading plaintext and drop anything after the command (no injection).
        socket.off("data", onData);
        buffer = "";
        socket.write("220 2.0.0 Ready to start TLS\r\n");
        upgradeToTls(socket, provider).then(
          (secured) => {
            secured.on("error", () => {});
            secured.on("data", (data: Buffer) => {
              transcript.push(`tls: ${data.toString().trim()}`);
              secured.end(`250 ${provider.describe(secured).protocol}\r\n`);
            });
          },
          (error: Error) => transcript.push(`error: ${error.message}`),
        );
      };
      socket.on("data", onData);
    }),
  );
  const plain = connect(port, "127.0.0.1");
  await readUntil(plain, /^220 mx ready\r\n$/);
  plain.write("STARTTLS\r\n");
  await readUntil(plain, /^220 2\.0\.0 Ready to start TLS\r\n$/);
  const secured = tls.connect({ socket: plain, ca: provider.certificatePem, servername: "localhost.local" });
  await once(secured, "secureConnect");
  assert.equal(secured.authorized, true);
  secured.write("EHLO client.example\r\n");
  const [reply] = (await once(secured, "data")) as [Buffer];
  assert.equal(reply.toString(), "250 TLSv1.3\r\n");
  secured.destroy();
  assert.deepEqual(transcript, ["STARTTLS", "tls: EHLO client.example"]);
});

test("upgradeToTls rejects on a non-TLS client, a client that hangs up, and a stalled handshake", async (t) => {
  const provider = await TlsContextProvider.create({});
  for (const options of [{}, { requestCert: true }] as TlsContextOptions[]) {
    const current = options.requestCert ? await TlsContextProvider.create(options) : provider;
    const served = await serveImplicit(t, current, 300);

    const garbage = connect(served.port, "127.0.0.1");
    garbage.on("error", () => {});
    garbage.write("EHLO not tls at all\r\n");
    await until(() => served.errors.length === 1, "the garbage error");
    assert.ok(served.errors[0] instanceof TlsHandshakeError);
    assert.equal(served.errors[0].message, "The TLS handshake failed: wrong version number.");

    const hangup = connect(served.port, "127.0.0.1");
    await once(hangup, "connect");
    hangup.destroy();
    await until(() => served.errors.length === 2, "the hang-up error");
    assert.match(
      served.errors[1]?.message ?? "",
      /closed the connection during the TLS handshake|socket hang up|ECONNRESET/,
    );

    const started = Date.now();
    const stalled = connect(served.port, "127.0.0.1");
    stalled.on("error", () => {});
    let stalledClosed = false;
    stalled.on("close", () => {
      stalledClosed = true;
    });
    await until(() => served.errors.length === 3, "the timeout");
    assert.match(served.errors[2]?.message ?? "", /^The TLS handshake did not complete within 300 ms\.$/);
    assert.ok(Date.now() - started >= 250);
    await until(() => stalledClosed, "the server to close the stalled connection");
    garbage.destroy();
  }
});
