/**
 * TLS hardening at the provider level, with Node's own TLS client over loopback: no client-initiated
 * renegotiation (issue 16), elliptic-curve key exchange groups only (issue 17), ECDHE before DHE (with
 * RFC 7919's ffdhe2048) in every preset, ECDSA certificates under TLS 1.2, and session-ticket keys
 * that rotate.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import tls from "node:tls";
import { type TlsContextOptions, TlsContextProvider } from "../../src/tls/context.js";
import { TLS_PRESET_NAMES } from "../../src/tls/presets.js";
import {
  DEFAULT_TICKET_KEY_ROTATION,
  type TicketKeySource,
  validateTicketKeyRotation,
} from "../../src/tls/ticket-keys.js";
import { upgradeToTls } from "../../src/tls/upgrade.js";
import { runProgram } from "../helpers/clients.js";
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

/**
 * Connects (TLS 1.2 or 1.3) offering `session`, and reports whether it was resumed, with the newest
 * session the server gave (read once the echo is back: by then TLS 1.3 tickets have arrived too).
 */
function ticketHandshake(
  port: number,
  ca: string,
  maxVersion: tls.SecureVersion,
  session?: Buffer,
): Promise<{ reused: boolean; session: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: "127.0.0.1",
      port,
      ca,
      servername: "localhost.local",
      maxVersion,
      ...(session ? { session } : {}),
    });
    let latest: Buffer | undefined;
    socket.on("session", (ticket: Buffer) => {
      latest = ticket;
    });
    socket.once("secureConnect", () => socket.write("x"));
    socket.once("data", () => {
      resolve({ reused: socket.isSessionReused(), session: latest ?? socket.getSession() });
      socket.destroy();
    });
    socket.once("error", reject);
  });
}

for (const [label, options] of UPGRADE_PATHS) {
  test(`session tickets resume until the ticket key rotates, every 12 hours by default (${label})`, async (t) => {
    t.mock.timers.enable({ apis: ["setInterval"] });
    const provider = await TlsContextProvider.create(options);
    const port = await serveEcho(t, provider);
    const ca = provider.certificatePem as string;
    for (const version of ["TLSv1.2", "TLSv1.3"] as const) {
      const first = await ticketHandshake(port, ca, version);
      assert.equal(first.reused, false);
      const again = await ticketHandshake(port, ca, version, first.session);
      assert.equal(again.reused, true, `${version}: a ticket resumes the session`);
      t.mock.timers.tick(12 * 60 * 60 * 1000);
      const late = await ticketHandshake(port, ca, version, first.session);
      assert.equal(late.reused, false, `${version}: after a rotation the old ticket gives a full handshake`);
      const renewed = await ticketHandshake(port, ca, version);
      const fresh = await ticketHandshake(port, ca, version, renewed.session);
      assert.equal(fresh.reused, true, `${version}: tickets made with the new key resume`);
    }
  });
}

test("a shared ticket key source: a ticket from one provider resumes on another (the workers' seam)", async (t) => {
  const uses: ((key: Buffer) => void)[] = [];
  let stopped = 0;
  const shared: TicketKeySource = {
    start(use) {
      uses.push(use);
      use(Buffer.alloc(48, 1));
      return () => {
        stopped++;
      };
    },
  };
  const dir = await tempDir(t);
  const files = await writeCertificate(dir, "server", { cn: "localhost.local" });
  const first = await TlsContextProvider.create({ ...files, ticketKeySource: shared });
  const second = await TlsContextProvider.create({ ...files, ticketKeySource: shared });
  const [portA, portB] = [await serveEcho(t, first), await serveEcho(t, second)];
  for (const version of ["TLSv1.2", "TLSv1.3"] as const) {
    const fromA = await ticketHandshake(portA, files.cert, version);
    assert.equal((await ticketHandshake(portB, files.cert, version, fromA.session)).reused, true, version);
  }
  // The source's next key reaches both; a ticket made before it no longer resumes.
  const before = await ticketHandshake(portA, files.cert, "TLSv1.2");
  for (const use of uses) use(Buffer.alloc(48, 2));
  assert.equal((await ticketHandshake(portB, files.cert, "TLSv1.2", before.session)).reused, false);
  const after = await ticketHandshake(portA, files.cert, "TLSv1.2");
  assert.equal((await ticketHandshake(portB, files.cert, "TLSv1.2", after.session)).reused, true);
  // A key of the wrong size is refused where the source hands it over; close() stops the source once.
  assert.throws(
    () => uses[0]?.(Buffer.alloc(32)),
    /^TypeError: A session-ticket key must be a Buffer of 48 bytes \(got 32 bytes\)\.$/,
  );
  first.close();
  first.close();
  second.close();
  assert.equal(stopped, 2);
});

test("the rotation interval is checked: a minute to about 24.8 days, in milliseconds", async () => {
  assert.equal(validateTicketKeyRotation(60_000), 60_000);
  assert.equal(DEFAULT_TICKET_KEY_ROTATION, 43_200_000);
  for (const bad of [43_200, 2 ** 31, 1.5e6 + 0.5, "43200000"]) {
    assert.throws(
      () => validateTicketKeyRotation(bad),
      /^RangeError: Invalid tlsTicketKeyRotation .*from 60000 \(a minute\) to 2147483647/,
    );
    await assert.rejects(
      TlsContextProvider.create({ ticketKeyRotation: bad as number }),
      /Invalid tlsTicketKeyRotation/,
    );
  }
});

test("the rotation timer never keeps a process alive (unref), even without close()", async (t) => {
  const context = new URL("../../src/tls/context.js", import.meta.url).href;
  const script = `import { TlsContextProvider } from ${JSON.stringify(context)}; await TlsContextProvider.create({}); console.log("created");`;
  const result = await runProgram(process.execPath, ["--input-type=module", "-e", script], {
    timeoutMs: 30_000,
  });
  assert.equal(result.signal, null, "exited by itself, not killed after 30 s");
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "created\n");
  t.diagnostic("a provider with a 12-hour rotation timer let node exit");
});
