/**
 * TLS hardening at the provider level, with Node's own TLS client over loopback: no client-initiated
 * renegotiation (issue 16), elliptic-curve key exchange groups only (issue 17), ECDHE before DHE (with
 * RFC 7919's ffdhe2048) in every preset, ECDSA certificates under TLS 1.2.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import tls from "node:tls";
import { type TlsContextOptions, TlsContextProvider } from "../../src/tls/context.js";
import { TLS_PRESET_NAMES } from "../../src/tls/presets.js";
import { upgradeToTls } from "../../src/tls/upgrade.js";
import { handshake, listen, tcpServer, tempDir, writeCertificate } from "./tls-helpers.js";

/** A TCP listener doing implicit TLS with upgradeToTls; each secured connection echoes what it gets. */
async function serveEcho(t: TestContext, provider: TlsContextProvider): Promise<number> {
  return listen(
    t,
    tcpServer((socket) => {
      socket.on("error", () => {});
      upgradeToTls(socket, provider).then(
        (secured) => {
          secured.on("error", () => {});
          secured.on("data", (data: Buffer) => secured.write(data));
        },
        () => {},
      );
    }),
  );
}

/** The two ways upgradeToTls secures a socket: a standalone TLSSocket, or a tls.Server (client certificates). */
const UPGRADE_PATHS: [string, TlsContextOptions][] = [
  ["shared context", {}],
  ["client certificates requested", { requestCert: true }],
];

/** Renegotiates once from the client side: "ok", or the error code that ended it (bounded). */
function renegotiateOnce(socket: tls.TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    const done = (result: string) => {
      clearTimeout(timer);
      socket.off("error", onError);
      resolve(result);
    };
    const timer = setTimeout(() => done("no outcome within 10 s"), 10_000);
    const onError = (error: NodeJS.ErrnoException) => done(error.code ?? error.message);
    socket.on("error", onError);
    const started = socket.renegotiate({ rejectUnauthorized: false }, (error) =>
      done(error ? ((error as NodeJS.ErrnoException).code ?? error.message) : "ok"),
    );
    if (!started) done("not started");
  });
}

for (const [label, options] of UPGRADE_PATHS) {
  test(`TLS 1.2 renegotiation asked by the client is refused (${label})`, async (t) => {
    const provider = await TlsContextProvider.create(options);
    const port = await serveEcho(t, provider);
    const client = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, maxVersion: "TLSv1.2" });
    t.after(() => client.destroy());
    await new Promise<void>((resolve, reject) => {
      client.once("secureConnect", resolve);
      client.once("error", reject);
    });
    assert.equal(client.getProtocol(), "TLSv1.2");
    // The server answers the new ClientHello with a no_renegotiation alert; OpenSSL's client then gives up.
    assert.equal(await renegotiateOnce(client), "ERR_SSL_NO_RENEGOTIATION");
  });
}

/** The key exchange group of a connection ("X25519", "prime256v1"...). */
function groupOf(socket: tls.TLSSocket): string | undefined {
  const info = socket.getEphemeralKeyInfo() as { name?: string } | null;
  return info?.name;
}

test("TLS 1.3 key exchange: X25519, P-256 and P-384 only; the finite-field groups are refused (every preset)", async (t) => {
  const dir = await tempDir(t);
  const files = await writeCertificate(dir, "server", { cn: "localhost.local" });
  for (const preset of TLS_PRESET_NAMES) {
    const provider = await TlsContextProvider.create({ ...files, preset });
    const port = await serveEcho(t, provider);
    const offer = (ecdhCurve: string) =>
      handshake(port, { ca: files.cert, servername: "localhost.local", minVersion: "TLSv1.3", ecdhCurve });
    for (const group of ["ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192"]) {
      const refused = await offer(group);
      assert.equal(refused.ok, false, `${preset}: ${group} is refused`);
      if (!refused.ok) assert.match(refused.code, /HANDSHAKE_FAILURE/);
    }
    for (const [group, name] of [
      ["X25519", "X25519"],
      ["P-256", "prime256v1"],
      ["P-384", "secp384r1"],
    ]) {
      const accepted = await offer(group);
      assert.ok(accepted.ok, `${preset}: ${group} ${JSON.stringify(accepted)}`);
      assert.equal(groupOf(accepted.socket), name);
    }
    // A client offering every group gets X25519, the cheapest.
    const both = await offer("ffdhe8192:P-384:X25519");
    assert.ok(both.ok && groupOf(both.socket) === "X25519", preset);
  }
});

test("TLS 1.2: every preset prefers ECDHE; DHE comes after every ECDHE suite, with a 2048-bit group", async (t) => {
  const dir = await tempDir(t);
  const files = await writeCertificate(dir, "server", { cn: "localhost.local" });
  for (const preset of TLS_PRESET_NAMES) {
    const provider = await TlsContextProvider.create({ ...files, preset });
    const port = await serveEcho(t, provider);
    const base = { ca: files.cert, servername: "localhost.local", maxVersion: "TLSv1.2" } as const;
    // The client lists DHE first; the server's order decides (honorCipherOrder).
    const both = await handshake(port, {
      ...base,
      ciphers: "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
    });
    assert.ok(both.ok, `${preset}: ${JSON.stringify(both)}`);
    assert.equal(both.cipher, "ECDHE-RSA-AES128-GCM-SHA256", preset);
    const suites = provider.settings.ciphers.split(":");
    const lastEcdhe = suites.findLastIndex((suite) => suite.startsWith("ECDHE-"));
    const firstDhe = suites.findIndex((suite) => suite.startsWith("DHE-"));
    assert.ok(firstDhe > lastEcdhe, `${preset}: every ECDHE suite before the first DHE one`);
    // A client offering only DHE still connects (Schannel-like clients need DHE with AES-GCM).
    const dheOnly = await handshake(port, {
      ...base,
      ciphers: "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-SHA",
    });
    assert.ok(
      dheOnly.ok && dheOnly.cipher === "DHE-RSA-AES256-GCM-SHA384",
      `${preset}: ${JSON.stringify(dheOnly)}`,
    );
    assert.deepEqual(dheOnly.socket.getEphemeralKeyInfo(), { type: "DH", size: 2048 });
  }
});

test("an ECDSA certificate serves TLS 1.2 clients under every preset (ECDHE-ECDSA suites)", async (t) => {
  const dir = await tempDir(t);
  const files = await writeCertificate(dir, "ecdsa", { cn: "localhost.local", keyType: "ec" });
  for (const preset of TLS_PRESET_NAMES) {
    const provider = await TlsContextProvider.create({ ...files, preset });
    const port = await serveEcho(t, provider);
    const tls12 = await handshake(port, {
      ca: files.cert,
      servername: "localhost.local",
      maxVersion: "TLSv1.2",
    });
    assert.ok(tls12.ok, `${preset}: ${JSON.stringify(tls12)}`);
    assert.equal(tls12.cipher, "ECDHE-ECDSA-AES256-GCM-SHA384", preset);
    assert.equal(tls12.serial, files.serial);
    const tls13 = await handshake(port, { ca: files.cert, servername: "localhost.local" });
    assert.ok(tls13.ok && tls13.protocol === "TLSv1.3", preset);
  }
});
