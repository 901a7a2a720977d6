/**
 * An AUTH flood against `mailgate serve --auth-users` (issue 16, item 2): FLOOD connections (environment,
 * default 20) send wrong passwords with AUTH PLAIN, each as soon as its previous one is answered (or one
 * every PACE_MS milliseconds at most, environment, default 0), reconnecting when the server closes; meanwhile one client delivers a 320 KB
 * message DELIVERIES times in a row. Prints each delivery's time and reply, and how the flood's attempts
 * were answered. Not a test: it measures, it never fails by timing.
 *
 *   npm run build && node build/bench/auth-flood.js [extra serve flags...]
 *
 * e.g. `--max-auth-failures-per-ip 0` measures the bounded password checks without the per-address limit
 * (every flood connection comes from 127.0.0.1, so that limit alone stops it after 10 failures).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const FLOOD = Number(process.env.FLOOD ?? 20);
const PACE_MS = Number(process.env.PACE_MS ?? 0);
const WARMUP_MS = 3000;
const DELIVERIES = 5;
const MESSAGE = Buffer.from(
  `Subject: legit\r\n\r\n${"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?\r\n".repeat(4900)}`,
);
const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A line-oriented client: reads whole replies. */
class Client {
  private buffer = "";
  private wake: (() => void) | null = null;
  ended = false;
  private constructor(readonly socket: Socket) {
    socket.on("data", (d: Buffer) => {
      this.buffer += d.toString("latin1");
      this.wake?.();
    });
    const end = () => {
      this.ended = true;
      this.wake?.();
    };
    socket.on("close", end);
    socket.on("error", end);
  }
  static open(port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: "127.0.0.1", noDelay: true });
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new Client(socket));
      });
    });
  }
  async reply(): Promise<string | null> {
    for (;;) {
      const match = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(this.buffer);
      if (match) {
        this.buffer = this.buffer.slice(match[0].length);
        return match[0];
      }
      if (this.ended) return null;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = null;
    }
  }
  async command(line: string | Buffer): Promise<string | null> {
    this.socket.write(line);
    return this.reply();
  }
}

async function startServe(dir: string, extra: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    process.execPath,
    [
      MAIN,
      "serve",
      "--ports",
      "0",
      "--maildir",
      join(dir, "mail"),
      "--auth-mode",
      "optional",
      "--auth-over-plaintext",
      "--auth-users",
      join(dir, "users"),
      ...extra,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let output = "";
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.on("data", (d) => {
      output += d;
      const match = /serving SMTP on 127\.0\.0\.1:(\d+)/.exec(output);
      if (match) resolve(Number(match[1]));
    });
    child.once("exit", () => reject(new Error(`serve exited:\n${output}`)));
  });
  return { child, port };
}

async function main(): Promise<void> {
  const extra = process.argv.slice(2);
  const dir = mkdtempSync(join(tmpdir(), "mailgate-auth-flood-"));
  const hash = execFileSync(process.execPath, [MAIN, "hash-password"], { input: "right password" });
  writeFileSync(join(dir, "users"), `alice:${hash.toString().trim()}\n`);
  const { child, port } = await startServe(dir, extra);
  const counts = new Map<string, number>();
  let stop = false;
  const plain = (user: string, password: string) => Buffer.from(`\0${user}\0${password}`).toString("base64");
  const flooder = async (n: number) => {
    while (!stop) {
      const client = await Client.open(port);
      if (!(await client.reply())?.startsWith("220")) break;
      await client.command("EHLO flood.test\r\n");
      while (!stop && !client.ended) {
        const started = Date.now();
        const reply = await client.command(`AUTH PLAIN ${plain(`user${n}`, "wrong")}\r\n`);
        const code = reply === null ? "closed" : reply.slice(0, 3);
        counts.set(code, (counts.get(code) ?? 0) + 1);
        await sleep(Math.max(0, PACE_MS - (Date.now() - started)));
      }
      client.socket.destroy();
    }
  };
  const flood = Array.from({ length: FLOOD }, (_, n) => flooder(n));
  await sleep(WARMUP_MS);
  const results: string[] = [];
  for (let i = 0; i < DELIVERIES; i++) {
    const started = performance.now();
    const client = await Client.open(port);
    await client.reply();
    await client.command("EHLO legit.test\r\n");
    await client.command("MAIL FROM:<a@x.test>\r\n");
    await client.command("RCPT TO:<b@y.test>\r\n");
    await client.command("DATA\r\n");
    const reply = await client.command(Buffer.concat([MESSAGE, Buffer.from("\r\n.\r\n")]));
    client.socket.end("QUIT\r\n");
    results.push(`${((performance.now() - started) / 1000).toFixed(2)} s ${reply?.slice(0, 3) ?? "closed"}`);
    console.error(results.at(-1));
  }
  stop = true;
  child.kill("SIGKILL");
  await Promise.allSettled(flood);
  rmSync(dir, { recursive: true, force: true });
  console.log(`serve ${extra.join(" ")}`);
  console.log(`deliveries of ${MESSAGE.length} bytes under the flood: ${results.join(", ")}`);
  console.log(`flood replies: ${JSON.stringify(Object.fromEntries([...counts].sort()))}`);
}

await main();
