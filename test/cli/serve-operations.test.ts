/**
 * `mailgate serve --metrics-listen --log-format json` as an operator runs it: the built CLI, real clients
 * (swaks, raw sockets from other loopback addresses), a load with refusals; the counters scraped from
 * /metrics equal what the clients saw, /readyz follows the Maildir's writability, and every log line is
 * JSON with the session's id and never a secret or a message body.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, type TestContext, test } from "node:test";
import { promisify } from "node:util";
import { hashPassword } from "../../src/cli/accounts.js";
import { RawClient, waitFor } from "../helpers/clients.js";
import { needProgram } from "../helpers/programs.js";
import { endpointOf, get, sample } from "../helpers/scrape.js";
import { MAIN, type Served, startServe } from "../helpers/serve-process.js";

const run = promisify(execFile);

const PASSWORD = "correct horse battery staple";
const WRONG_PASSWORD = "wrong horse";
const BODY_MARKER = "BODY-MARKER-9f3b2c";
const MAX_MESSAGE_SIZE = 10_000;

/** The replies a client read, by code. */
class Seen {
  readonly codes: number[] = [];
  count(predicate: (code: number) => boolean): number {
    return this.codes.filter(predicate).length;
  }
}

/** Sends a command on a raw client and records the reply's code. */
async function command(client: RawClient, seen: Seen, line: string): Promise<string> {
  const reply = await client.command(line);
  seen.codes.push(Number(reply.slice(0, 3)));
  return reply;
}

async function greeted(port: number, seen: Seen, localAddress: string): Promise<RawClient> {
  const client = await RawClient.connect(port, "127.0.0.1", localAddress);
  const reply = await client.reply();
  seen.codes.push(Number(reply.slice(0, 3)));
  return client;
}

describe("mailgate serve --metrics-listen --log-format json", () => {
  let dir: string;
  let served: Served;
  let endpoint: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "mailgate-ops-"));
    await writeFile(join(dir, "users"), `alice:${await hashPassword(PASSWORD)}\n`);
    served = await startServe(dir, [
      "--metrics-listen",
      "127.0.0.1:0",
      "--log-format",
      "json",
      "--logger-severity",
      "debug",
      "--max-connections-per-ip",
      "2",
      "--max-message-size",
      String(MAX_MESSAGE_SIZE),
      "--auth-mode",
      "optional",
      "--auth-over-plaintext",
      "--auth-users",
      "users",
    ]);
    endpoint = endpointOf(served);
  });

  after(async () => {
    served.child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  });

  test("the counters equal what the clients saw", async (t) => {
    const swaks = needProgram(t, "swaks");
    if (!swaks) return;
    const seen = new Seen();
    const body = `${BODY_MARKER}\n${"x".repeat(2000)}`;
    // Eight good messages, one connection each (each one's session is over before the next starts).
    for (let i = 0; i < 8; i++) {
      const { stdout } = await run(swaks, [
        "--server",
        `127.0.0.1:${served.port}`,
        "--from",
        "a@x.test",
        "--to",
        "b@y.test",
        "--body",
        body,
      ]);
      // swaks prints the server's lines as "<-  250 ..." ("<~" over TLS, "<**" for errors); the last line
      // of a reply has a space after its code.
      for (const [, code] of stdout.matchAll(/^<(?:-|~|\*\*) +(\d{3}) /gm)) seen.codes.push(Number(code));
    }
    // A bad command, a message too big, a wrong password and a good AUTH LOGIN, from 127.0.0.2.
    const raw = await greeted(served.port, seen, "127.0.0.2");
    assert.match(await command(raw, seen, "EHLO client.test"), /^250 /m);
    assert.match(await command(raw, seen, "FROB the widget"), /^500 /);
    assert.match(await command(raw, seen, "MAIL FROM:<a@x.test>"), /^250 /);
    assert.match(await command(raw, seen, "RCPT TO:<b@y.test>"), /^250 /);
    assert.match(await command(raw, seen, "DATA"), /^354 /);
    const big = `Subject: big\r\n\r\n${`${BODY_MARKER} ${"y".repeat(98)}\r\n`.repeat(120)}.`;
    assert.match(await command(raw, seen, big), /^552 /);
    const plain = Buffer.from(`\0alice\0${WRONG_PASSWORD}`).toString("base64");
    assert.match(await command(raw, seen, `AUTH PLAIN ${plain}`), /^535 /);
    assert.match(await command(raw, seen, "AUTH LOGIN"), /^334 /);
    assert.match(await command(raw, seen, Buffer.from("alice").toString("base64")), /^334 /);
    assert.match(await command(raw, seen, Buffer.from(PASSWORD).toString("base64")), /^235 /);
    assert.match(await command(raw, seen, "QUIT"), /^221 /);
    await raw.closed;
    // Over maxConnectionsPerIp (2) from 127.0.0.3: the third is refused with 421 at accept.
    const held = [
      await greeted(served.port, seen, "127.0.0.3"),
      await greeted(served.port, seen, "127.0.0.3"),
    ];
    const refused = await RawClient.connect(served.port, "127.0.0.1", "127.0.0.3");
    assert.match(await refused.untilEnd(), /^421 4\.7\.0 /);
    for (const client of held) client.close();

    let metrics = "";
    const deadline = Date.now() + 10_000;
    for (;;) {
      metrics = (await get(`${endpoint}/metrics`)).body;
      if (sample(metrics, "mailgate_connections_open") === 0 || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(sample(metrics, "mailgate_connections_open"), 0, metrics);
    assert.equal(sample(metrics, "mailgate_connections_total"), 8 + 1 + 2);
    assert.equal(sample(metrics, 'mailgate_connections_refused_total{reason="max-connections-per-ip"}'), 1);
    assert.equal(sample(metrics, 'mailgate_connections_refused_total{reason="max-connections"}'), 0);
    assert.equal(sample(metrics, 'mailgate_messages_total{outcome="accepted"}'), 8);
    assert.equal(sample(metrics, 'mailgate_messages_total{outcome="refused"}'), 1);
    for (const digit of [2, 3, 4, 5]) {
      assert.equal(
        sample(metrics, `mailgate_replies_total{class="${digit}xx"}`),
        seen.count((code) => Math.floor(code / 100) === digit),
        `${digit}xx replies`,
      );
    }
    assert.equal(sample(metrics, 'mailgate_commands_total{verb="MAIL"}'), 9);
    assert.equal(sample(metrics, 'mailgate_commands_total{verb="AUTH"}'), 2);
    assert.equal(sample(metrics, 'mailgate_commands_total{verb="other"}'), 1);
    assert.equal(sample(metrics, "mailgate_auth_failures_total"), 1);
    assert.equal(sample(metrics, "mailgate_hook_errors_total"), 0);
    assert.ok(sample(metrics, "mailgate_received_bytes_total") > 8 * 2000 + MAX_MESSAGE_SIZE);
    assert.equal(sample(metrics, 'mailgate_store_duration_seconds_count{outcome="stored"}'), 8);
    assert.equal(sample(metrics, 'mailgate_sessions_open{tls="no",auth="no"}'), 0);
    assert.match(metrics, /^process_cpu_seconds_total /m, "Node's process metrics too");

    // The JSON log of the same load.
    const lines = served
      .output()
      .split("\n")
      .filter((line) => line !== "");
    const events = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const event of events) {
      assert.equal(typeof event.time, "string");
      assert.match(String(event.level), /^(debug|info|warn|error|fatal)$/);
      assert.equal(typeof event.msg, "string");
    }
    const bySession = new Map<string, Set<string>>();
    for (const event of events.filter((e) => typeof e.client === "string")) {
      assert.equal(typeof event.session, "string", JSON.stringify(event));
      const clients = bySession.get(event.session as string) ?? new Set<string>();
      clients.add(event.client as string);
      bySession.set(event.session as string, clients);
    }
    for (const clients of bySession.values()) assert.equal(clients.size, 1, "one client per session id");
    const rawSession = events.find((e) => String(e.client).startsWith("127.0.0.2:"))?.session;
    const rawLines = events.filter((e) => e.session === rawSession);
    assert.ok(
      rawLines.some((e) => e.msg === "<<< AUTH PLAIN ***"),
      "the dialogue is logged, AUTH masked",
    );
    assert.ok(rawLines.some((e) => /Authentication failed for "alice"/.test(String(e.msg))));
    assert.ok(rawLines.every((e) => String(e.client).startsWith("127.0.0.2:")));
    const output = served.output();
    for (const secret of [
      PASSWORD,
      WRONG_PASSWORD,
      plain,
      Buffer.from(PASSWORD).toString("base64"),
      BODY_MARKER,
    ]) {
      assert.ok(!output.includes(secret), `the log must not hold ${JSON.stringify(secret)}`);
    }
  });

  test("/healthz answers while the process runs", async () => {
    assert.deepEqual(await get(`${endpoint}/healthz`), { status: 200, body: "ok\n" });
    assert.equal((await get(`${endpoint}/nothing`)).status, 404);
  });

  test("/readyz turns 503 when the Maildir is replaced by a file, and 200 again after", async () => {
    const maildir = join(dir, "mail");
    assert.deepEqual(await get(`${endpoint}/readyz`), { status: 200, body: "ready\n" });
    await rename(maildir, `${maildir}.away`);
    await writeFile(maildir, "not a Maildir\n");
    try {
      const unready = await get(`${endpoint}/readyz`);
      assert.equal(unready.status, 503);
      assert.match(unready.body, /^not ready: Cannot use Maildir ".*mail": ENOTDIR/);
    } finally {
      await rm(maildir);
      await rename(`${maildir}.away`, maildir);
    }
    assert.deepEqual(await get(`${endpoint}/readyz`), { status: 200, body: "ready\n" });
  });

  test("/readyz turns 503 under a read-only file system mounted over the Maildir, and 200 after", async (t) => {
    const maildir = join(dir, "mail");
    if (!(await mountReadOnlyMaildir(t, maildir))) return;
    try {
      const unready = await get(`${endpoint}/readyz`);
      assert.equal(unready.status, 503);
      assert.match(unready.body, /^not ready: Cannot use Maildir ".*mail": EROFS/);
    } finally {
      await run("umount", [maildir]);
    }
    assert.deepEqual(await get(`${endpoint}/readyz`), { status: 200, body: "ready\n" });
  });

  test("SIGTERM: /readyz says stopping while sessions finish, then the process exits 0", async () => {
    // A session in a transaction holds the graceful stop open.
    const client = await RawClient.greeted(served.port);
    assert.match(await client.command("EHLO client.test"), /^250 /m);
    assert.match(await client.command("MAIL FROM:<a@x.test>"), /^250 /);
    served.child.kill("SIGTERM");
    await waitFor(() => /stopping gracefully/.test(served.output()), "the graceful stop");
    const stopping = await get(`${endpoint}/readyz`);
    assert.deepEqual(stopping, { status: 503, body: "not ready: the server is stopping\n" });
    assert.match(await client.command("QUIT"), /^221 /);
    assert.equal(await served.exited, 0, served.output());
    assert.match(served.output(), /mailgate stopped/);
  });
});

/**
 * Mounts a tmpfs holding tmp/, new/ and cur/ over `maildir`, then makes it read-only. Tests run as root; a
 * developer's machine without the right to mount skips with one line (CI fails instead).
 */
async function mountReadOnlyMaildir(t: TestContext, maildir: string): Promise<boolean> {
  try {
    await run("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", maildir]);
  } catch (error) {
    const message = `cannot mount a tmpfs (run the tests as root): ${String(error)}`;
    if (process.env.CI) throw new Error(message);
    t.skip(message);
    return false;
  }
  for (const sub of ["tmp", "new", "cur"]) await mkdir(join(maildir, sub));
  await run("mount", ["-o", "remount,ro", maildir]);
  return true;
}

describe("mailgate serve operations flags", () => {
  test("a bad --log-format or --metrics-listen is a usage error (exit 2) naming the flag", async () => {
    for (const [args, text] of [
      [["--log-format", "xml"], /Invalid value for --log-format: "xml"; it accepts one of text, json\./],
      [["--metrics-listen", "9464"], /Invalid value for --metrics-listen: "9464"; it accepts HOST:PORT/],
      [["--metrics-listen", "127.0.0.1:70000"], /Invalid value for --metrics-listen/],
    ] as const) {
      const result = await run(process.execPath, [MAIN, "serve", ...args]).catch((e) => e);
      assert.equal(result.code, 2);
      assert.match(result.stderr, text);
    }
  });

  test("a metrics port in use stops the start with one sentence (exit 1) and nothing served", async () => {
    const dir = await mkdtemp(join(tmpdir(), "mailgate-ops-busy-"));
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    try {
      const port = (busy.address() as { port: number }).port;
      const result = await run(
        process.execPath,
        [MAIN, "serve", "--ports", "0", "--metrics-listen", `127.0.0.1:${port}`],
        { cwd: dir },
      ).catch((e) => e);
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        new RegExp(
          `^mailgate: Cannot listen for metrics on 127\\.0\\.0\\.1:${port}: the address is already in use; stop the other server or choose another port\\.\\n$`,
        ),
      );
    } finally {
      busy.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("--help lists the operations flags with their defaults", async () => {
    const { stdout } = await run(process.execPath, [MAIN, "serve", "--help"]);
    assert.match(stdout, /--metrics-listen HOST:PORT\n.*\(default: off\)/);
    assert.match(stdout, /--log-format FORMAT\n.*\(default: text\)/);
  });
});
