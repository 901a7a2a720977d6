/**
 * TLS seen from outside a running SmtpServer, with openssl s_client over loopback on STARTTLS and
 * implicit TLS listeners (port 0): the generated certificate's names.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { SmtpServer, type SmtpServerOptions } from "../../src/server/server.js";
import { runProgram, silentLogger } from "../helpers/clients.js";
import { needProgram } from "../helpers/programs.js";
import { tempDir } from "./tls-helpers.js";

type Mode = "STARTTLS" | "implicit TLS";

/** A server on 127.0.0.1 port 0 speaking STARTTLS or implicit TLS; stopped after the test. */
async function startServer(t: TestContext, mode: Mode, options: SmtpServerOptions = {}): Promise<SmtpServer> {
  const server = new SmtpServer({
    hosts: "127.0.0.1",
    ports: "0",
    hostname: "mx.test",
    logger: silentLogger,
    loggerSeverity: "fatal",
    ...(mode === "STARTTLS" ? { tlsMode: "optional" } : { tlsPorts: "0" }),
    ...options,
  });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  return server;
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
