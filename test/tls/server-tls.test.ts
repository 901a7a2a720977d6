/**
 * TLS hardening seen from outside a running SmtpServer, with openssl s_client over loopback on STARTTLS
 * and implicit TLS listeners (port 0): renegotiation refused, finite-field groups refused, an ECDSA
 * certificate for TLS 1.2, the DHE group of a custom cipher string, the generated certificate's names,
 * and the session-ticket key rotation that stops with the server.
 */
import assert from "node:assert/strict";
import { getDiffieHellman } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import type tls from "node:tls";
import { SmtpServer, type SmtpServerOptions } from "../../src/server/server.js";
import { runProgram, silentLogger, startTestServer } from "../helpers/clients.js";
import { needProgram } from "../helpers/programs.js";
import { OpensslClient, tempDir, writeCertificate } from "./tls-helpers.js";

type Mode = "STARTTLS" | "implicit TLS";
const MODES: Mode[] = ["STARTTLS", "implicit TLS"];

/** A server on 127.0.0.1 port 0 speaking STARTTLS or implicit TLS; stopped after the test. */
async function startServer(t: TestContext, mode: Mode, options: SmtpServerOptions = {}): Promise<SmtpServer> {
  const modeOptions: SmtpServerOptions = mode === "STARTTLS" ? { tlsMode: "optional" } : { tlsPorts: "0" };
  return (await startTestServer(t, { ...modeOptions, ...options })).server;
}

/** s_client's arguments to reach `server` in `mode`. */
function connectArgs(server: SmtpServer, mode: Mode): string[] {
  const args = ["-connect", `127.0.0.1:${server.ports[0]}`];
  return mode === "STARTTLS" ? [...args, "-starttls", "smtp"] : args;
}

/** Runs s_client once to the end of its handshake (stdin closed at once), bounded. */
function probe(openssl: string, server: SmtpServer, mode: Mode, args: readonly string[]) {
  return runProgram(openssl, ["s_client", ...connectArgs(server, mode), ...args], { timeoutMs: 20_000 });
}

for (const mode of MODES) {
  test(`${mode}: openssl s_client -tls1_2 cannot renegotiate (R): the session ends instead`, async (t) => {
    const openssl = needProgram(t, "openssl");
    if (openssl === undefined) return;
    const server = await startServer(t, mode);
    const client = new OpensslClient(t, openssl, ["-tls1_2", ...connectArgs(server, mode)]);
    const replies = () => (client.stdout.match(/^250 2\.0\.0 /gm) ?? []).length;
    assert.ok(await client.waitFor(/Verify return code/), `handshake: ${client.stdout}${client.stderr}`);
    if (mode === "implicit TLS") assert.ok(await client.waitFor(/^220 mx\.test /m), client.stdout);
    client.write("NOOP\r\n");
    assert.ok(await client.waitFor(/^250 2\.0\.0 /m), `NOOP before R: ${client.stdout}`);

    client.write("R\n");
    assert.ok(await client.waitFor(/RENEGOTIATING/), client.stderr);
    client.write("NOOP\r\n");
    // Either outcome ends the wait: a second reply (renegotiated) or the client's exit (refused).
    await client.waitFor(/^250 2\.0\.0 [^\n]*\n[\s\S]*^250 2\.0\.0 /m);
    assert.equal(replies(), 1, `no reply after R: the renegotiation did not happen\n${client.stdout}`);
    assert.ok(await client.waitForExit(), "s_client ends the session");
    assert.match(client.stderr, /no renegotiation/);
  });

  test(`${mode}: openssl s_client -tls1_3 -groups: ffdhe2048 and ffdhe8192 fail, X25519, P-256 and P-384 work`, async (t) => {
    const openssl = needProgram(t, "openssl");
    if (openssl === undefined) return;
    const server = await startServer(t, mode);
    for (const group of ["ffdhe2048", "ffdhe8192"]) {
      const refused = await probe(openssl, server, mode, ["-tls1_3", "-groups", group]);
      assert.notEqual(refused.code, 0, `${group}: ${refused.stdout}`);
      assert.match(refused.stderr, /handshake failure/, group);
    }
    for (const [group, shown] of [
      ["X25519", "X25519"],
      ["P-256", "prime256v1"],
      ["P-384", "secp384r1"],
    ]) {
      const accepted = await probe(openssl, server, mode, ["-tls1_3", "-groups", group]);
      assert.match(
        accepted.stdout,
        new RegExp(`Server Temp Key: [^\\n]*${shown}`),
        `${group}: ${accepted.stderr}`,
      );
      assert.match(accepted.stdout, /New, TLSv1\.3, Cipher is TLS_/);
    }
  });
}

test("an ECDSA certificate file: openssl s_client -tls1_2 gets an ECDHE-ECDSA suite and verifies it", async (t) => {
  const openssl = needProgram(t, "openssl");
  if (openssl === undefined) return;
  const dir = await tempDir(t);
  const files = await writeCertificate(dir, "ecdsa", { cn: "mx.test", keyType: "ec" });
  for (const mode of MODES) {
    const server = await startServer(t, mode, { tlsCertPath: files.certPath, tlsKeyPath: files.keyPath });
    const result = await probe(openssl, server, mode, [
      "-tls1_2",
      "-CAfile",
      files.certPath,
      "-verify_hostname",
      "mx.test",
    ]);
    assert.match(
      result.stdout,
      /New, TLSv1\.2, Cipher is ECDHE-ECDSA-AES256-GCM-SHA384/,
      `${mode}: ${result.stderr}`,
    );
    assert.match(result.stdout, /Verify return code: 0 \(ok\)/, mode);
  }
});

/** The prime p of the DHE group in a TLS 1.2 ServerKeyExchange, from `s_client -msg` output. */
function serverKeyExchangePrime(msg: string): Buffer | undefined {
  const block = /ServerKeyExchange\n([\s\S]*?)\n(?:<<<|>>>)/.exec(msg)?.[1];
  if (block === undefined) return undefined;
  const bytes = Buffer.from(block.replace(/\s+/g, ""), "hex");
  // handshake header (type 1 byte, length 3), then ServerDHParams: p as a 2-byte length and its value.
  return bytes.subarray(6, 6 + bytes.readUInt16BE(4));
}

test("DHE uses the RFC 7919 group ffdhe2048, not RFC 3526 group 14", async (t) => {
  const openssl = needProgram(t, "openssl");
  if (openssl === undefined) return;
  const server = await startServer(t, "implicit TLS");
  const result = await probe(openssl, server, "implicit TLS", [
    "-tls1_2",
    "-cipher",
    "DHE-RSA-AES128-GCM-SHA256",
    "-msg",
  ]);
  assert.match(result.stdout, /Cipher is DHE-RSA-AES128-GCM-SHA256/, result.stderr);
  const prime = serverKeyExchangePrime(result.stdout);
  assert.ok(prime !== undefined && prime.length === 256, "a 2048-bit prime");
  // OpenSSL's own ffdhe2048 (PEM; its DER is SEQUENCE { INTEGER p, 257 bytes with a 0 lead, INTEGER g }).
  const made = await runProgram(openssl, [
    "genpkey",
    "-genparam",
    "-algorithm",
    "DH",
    "-pkeyopt",
    "group:ffdhe2048",
  ]);
  assert.equal(made.code, 0, made.stderr);
  const der = Buffer.from(made.stdout.replace(/-----[A-Z ]+-----|\s/g, ""), "base64");
  assert.ok(prime.equals(der.subarray(9, 9 + 256)), "the ffdhe2048 prime");
  assert.ok(!prime.equals(getDiffieHellman("modp14").getPrime()), "not RFC 3526 group 14");
});

test("the generated certificate names the hostname option too (the name an MX points at)", async (t) => {
  const server = await startServer(t, "STARTTLS", { hostname: "mx.test" });
  const certificate = server.tls?.certificate;
  assert.equal(certificate?.subject, "CN=localhost.local", "the seed's CN for a loopback host");
  assert.equal(certificate?.subjectAltName, "DNS:localhost.local, IP Address:127.0.0.1, DNS:mx.test");
  const openssl = needProgram(t, "openssl");
  if (openssl === undefined) return;
  const dir = await tempDir(t);
  await writeFile(join(dir, "ca.pem"), server.tls?.certificatePem ?? "");
  const result = await probe(openssl, server, "STARTTLS", [
    "-CAfile",
    join(dir, "ca.pem"),
    "-verify_hostname",
    "mx.test",
  ]);
  assert.match(result.stdout, /Verify return code: 0 \(ok\)/, result.stdout);
});

test("the session-ticket key rotates every 12 hours while the server runs, and no more after stop()", async (t) => {
  t.mock.timers.enable({ apis: ["setInterval"] });
  const server = new SmtpServer({
    hosts: "127.0.0.1",
    ports: "0",
    tlsMode: "optional",
    logger: silentLogger,
  });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  const provider = server.tls;
  assert.ok(provider);
  const first: tls.SecureContext = provider.activeContext;
  t.mock.timers.tick(12 * 60 * 60 * 1000 - 1);
  assert.equal(provider.activeContext, first, "not before 12 hours");
  t.mock.timers.tick(1);
  const second = provider.activeContext;
  assert.notEqual(second, first, "a new context with the new key after 12 hours");
  await server.stop({ gracefully: false });
  t.mock.timers.tick(48 * 60 * 60 * 1000);
  assert.equal(provider.activeContext, second, "the rotation timer is cleared by stop()");
});

test("tlsTicketKeyRotation sets the interval; a value outside a minute to ~24.8 days fails at construction", async (t) => {
  t.mock.timers.enable({ apis: ["setInterval"] });
  const server = await startServer(t, "STARTTLS", { tlsTicketKeyRotation: 60_000 });
  const provider = server.tls;
  assert.ok(provider);
  const first = provider.activeContext;
  t.mock.timers.tick(59_999);
  assert.equal(provider.activeContext, first);
  t.mock.timers.tick(1);
  assert.notEqual(provider.activeContext, first);
  for (const bad of [43_200, 2 ** 31]) {
    assert.throws(
      () => new SmtpServer({ tlsMode: "optional", tlsTicketKeyRotation: bad }),
      /^TypeError: Invalid option tlsTicketKeyRotation: \d+; it accepts an integer from 60000 to 2147483647\.$/,
    );
  }
});

test("a start() that fails after the TLS context was made stops its rotation timer too", async (t) => {
  t.mock.timers.enable({ apis: ["setInterval"] });
  const occupied = createServer();
  await new Promise<void>((resolve) => occupied.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => occupied.close(() => resolve())));
  const address = occupied.address();
  assert.ok(address !== null && typeof address === "object");
  const server = new SmtpServer({
    hosts: "127.0.0.1",
    ports: address.port,
    tlsMode: "optional",
    logger: silentLogger,
  });
  await assert.rejects(server.start(), /Cannot listen on/);
  const provider = server.tls;
  assert.ok(provider, "the context was made before the listeners");
  const context = provider.activeContext;
  t.mock.timers.tick(48 * 60 * 60 * 1000);
  assert.equal(provider.activeContext, context, "no rotation after the failed start");
});
