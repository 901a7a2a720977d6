/**
 * Shared by the TLS tests: temporary certificate files, loopback TLS servers, a probing client and an
 * interactive openssl s_client.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import tls from "node:tls";
import { generateSelfSignedCertificate, type SelfSignedOptions } from "../../src/tls/certificates.js";

export interface CertFiles {
  cert: string;
  key: string;
  certPath: string;
  keyPath: string;
  serial: string;
}

export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "mailgate-tls-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Generates a certificate and writes it to `<dir>/<name>.crt` and `<name>.key`. */
export async function writeCertificate(
  dir: string,
  name: string,
  options: SelfSignedOptions,
): Promise<CertFiles> {
  const { cert, key } = await generateSelfSignedCertificate(options);
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  await writeFile(certPath, cert);
  await writeFile(keyPath, key);
  return { cert, key, certPath, keyPath, serial: new X509Certificate(cert).serialNumber };
}

/** Listens on 127.0.0.1 port 0; closed after the test. */
export async function listen<T extends Server>(t: TestContext, server: T): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const sockets = new Set<Socket>();
  server.on(server instanceof tls.Server ? "secureConnection" : "connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return address.port;
}

/** A plain TCP server whose every connection is handed to `onSocket` (for STARTTLS / implicit TLS tests). */
export function tcpServer(onSocket: (socket: Socket) => void): Server {
  return createServer(onSocket);
}

export type Handshake =
  | { ok: true; protocol: string; cipher: string; serial: string; subject: string; socket: tls.TLSSocket }
  | { ok: false; code: string; message: string };

/** Connects with TLS, verifying the chain against `ca` unless `rejectUnauthorized` is false, then closes. */
export function handshake(port: number, options: tls.ConnectionOptions = {}): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ...options }, () => {
      const peer = socket.getPeerX509Certificate();
      resolve({
        ok: true,
        protocol: socket.getProtocol() ?? "",
        cipher: socket.getCipher().name,
        serial: peer?.serialNumber ?? "",
        subject: peer?.subject ?? "",
        socket,
      });
      socket.end();
    });
    socket.on("error", (error: NodeJS.ErrnoException) =>
      resolve({ ok: false, code: error.code ?? "", message: error.message }),
    );
  });
}

/** An identity check for connecting by IP literal: the certificate must name that IP. */
export function checkIp(ip: string): tls.ConnectionOptions["checkServerIdentity"] {
  return (_host, cert) => tls.checkServerIdentity(ip, cert);
}

/**
 * An interactive `openssl s_client` (for the R command, which needs a live stdin): output is collected
 * as it comes, every wait is bounded, and the process is killed if it outlives the test.
 */
export class OpensslClient {
  stdout = "";
  stderr = "";
  exitCode: number | null | undefined = undefined;
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly exited: Promise<void>;

  constructor(t: TestContext, openssl: string, args: readonly string[]) {
    this.child = spawn(openssl, ["s_client", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout.setEncoding("utf8").on("data", (text: string) => {
      this.stdout += text;
    });
    this.child.stderr.setEncoding("utf8").on("data", (text: string) => {
      this.stderr += text;
    });
    this.child.stdin.on("error", () => {}); // writing to a client that has exited is not an error here
    this.exited = new Promise((resolve) =>
      this.child.once("close", (code) => {
        this.exitCode = code;
        resolve();
      }),
    );
    t.after(() => this.close());
  }

  write(text: string): void {
    if (this.exitCode === undefined) this.child.stdin.write(text);
  }

  /** Resolves true once `pattern` matches stdout + stderr, false if the client exits first or after `timeoutMs`. */
  async waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.stdout + this.stderr)) {
      if (this.exitCode !== undefined || Date.now() > deadline)
        return pattern.test(this.stdout + this.stderr);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return true;
  }

  /** Resolves true if the client exits within `timeoutMs`. */
  async waitForExit(timeoutMs = 10_000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const result = await Promise.race([this.exited.then(() => true), expired]);
    clearTimeout(timer);
    return result;
  }

  /** Ends stdin and waits for the exit, killing the client after 5 s. */
  async close(): Promise<void> {
    if (this.exitCode !== undefined) return;
    this.child.stdin.end();
    if (!(await this.waitForExit(5000))) this.child.kill("SIGKILL");
    await this.exited;
  }
}
