/**
 * LMTP (RFC 2033): the transcript, per-recipient replies, UNIX domain sockets with their errors, and real
 * LMTP clients (Python's smtplib.LMTP, swaks --protocol LMTP) over the socket.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, type TestContext, test } from "node:test";
import { promisify } from "node:util";
import { MailboxLmtpd } from "../../examples/cookbook/lmtp-socket.js";
import { SmtpError } from "../../src/protocol/errors.js";
import { SmtpServer, type SmtpServerOptions } from "../../src/server/server.js";
import { parseEnvelopeHeaders } from "../../src/store/maildir.js";
import { RawClient, silentLogger } from "../helpers/clients.js";
import { needProgram, requireProgram } from "../helpers/programs.js";
import { openSession } from "../helpers/session-harness.js";

const run = promisify(execFile);
const QUIET: SmtpServerOptions = { hostname: "mx.test", logger: silentLogger, loggerSeverity: "fatal" };

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "mailgate-lmtp-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe("LMTP transcript", () => {
  test("LHLO offers PIPELINING and ENHANCEDSTATUSCODES even with pipelining off; HELO/EHLO get 500", async () => {
    const t = await openSession({ config: { lmtp: true, pipelining: true } });
    assert.equal(await t.send("HELO c\r\n"), "500 5.5.1 Error: this is LMTP, use LHLO\r\n");
    assert.equal(await t.send("EHLO c\r\n"), "500 5.5.1 Error: this is LMTP, use LHLO\r\n");
    assert.match(
      await t.send("LHLO c\r\n"),
      /^250-mx\.test at your service\r\n250-PIPELINING\r\n[\s\S]*250-ENHANCEDSTATUSCODES\r\n/,
    );
    const smtp = await openSession();
    assert.equal(await smtp.send("LHLO c\r\n"), "500 5.5.1 Error: this is SMTP, use EHLO\r\n");
  });

  test("one reply per accepted recipient, in RCPT order, from the outcomes the hook returns", async () => {
    const t = await openSession({
      config: { lmtp: true },
      hooks: {
        onRcptTo: (_ctx, address) => {
          if (address === "nobody@y.test") throw new SmtpError(550, "No such user", "5.1.1");
          return undefined;
        },
        onMessageData: (ctx) =>
          ctx.envelope.to.map((r) =>
            r === "full@y.test" ? new SmtpError(452, "Mailbox full", "4.2.2") : undefined,
          ),
      },
    });
    await t.send("LHLO c\r\n");
    const replies = await t.send(
      "MAIL FROM:<a@x.test>\r\nRCPT TO:<one@y.test>\r\nRCPT TO:<nobody@y.test>\r\nRCPT TO:<full@y.test>\r\nRCPT TO:<two@y.test>\r\nDATA\r\n",
    );
    assert.equal(
      replies,
      '250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 No such user\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 Enter message, ending with "." on a line by itself\r\n',
    );
    assert.equal(
      await t.send("Subject: x\r\n\r\nhi\r\n.\r\n"),
      "250 2.0.0 <one@y.test> Ok\r\n452 4.2.2 Mailbox full\r\n250 2.0.0 <two@y.test> Ok\r\n",
    );
  });

  test("an error thrown for the message applies to every recipient", async () => {
    const t = await openSession({
      config: { lmtp: true },
      hooks: {
        onMessageData: () => {
          throw new SmtpError(452, "Disk full", "4.3.1");
        },
      },
    });
    await t.send("LHLO c\r\n");
    await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<one@y.test>\r\nRCPT TO:<two@y.test>\r\nDATA\r\n");
    assert.equal(await t.send("hi\r\n.\r\n"), "452 4.3.1 Disk full\r\n452 4.3.1 Disk full\r\n");
  });

  test("in SMTP, a refusal among the outcomes refuses the whole message", async () => {
    const t = await openSession({
      hooks: {
        onMessageData: (ctx) =>
          ctx.envelope.to.map((r) => (r === "b@y.test" ? SmtpError.code(550) : undefined)),
      },
    });
    await t.send("EHLO c\r\n");
    await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<a@y.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
    assert.match(await t.send("hi\r\n.\r\n"), /^550 5\.1\.1 /);
  });
});

describe("UNIX domain sockets", () => {
  test("the example LMTP server answers Python's smtplib.LMTP per recipient over a socket", async (t) => {
    const dir = await tempDir(t);
    const socketPath = join(dir, "lmtp.sock");
    const server = new MailboxLmtpd({ ...QUIET, socketPath, socketMode: 0o660 });
    await server.start();
    t.after(() => server.stop({ gracefully: false }));
    assert.deepEqual(server.addresses, [`unix:${socketPath}`], "no TCP listener without ports/hosts");
    assert.equal((await stat(socketPath)).mode & 0o777, 0o660);
    // CPython's LMTP.sendmail() reads a single reply after DATA, so the script drives the LMTP
    // exchange itself: data() reads the first recipient's reply, getreply() each further one.
    const script = [
      "import smtplib, sys",
      "s = smtplib.LMTP(sys.argv[1])",
      "s.ehlo()",
      "s.mail('a@x.test')",
      "refused, accepted = {}, []",
      "for r in ['alice@example.test', 'nobody@example.test', 'full@example.test', 'bob@example.test']:",
      "    code, msg = s.rcpt(r)",
      "    (accepted.append(r) if code == 250 else refused.__setitem__(r, (code, msg)))",
      "replies = [s.data(b'Subject: lmtp\\r\\n\\r\\nhi\\r\\n')] + [s.getreply() for _ in accepted[1:]]",
      "for r, (code, msg) in zip(accepted, replies):",
      "    if code != 250: refused[r] = (code, msg)",
      "print(repr(refused))",
      "s.quit()",
    ].join("\n");
    const { stdout } = await run("python3", ["-c", script, socketPath]);
    assert.equal(
      stdout.trim(),
      "{'nobody@example.test': (550, b'5.1.1 Recipient does not exist over here'), 'full@example.test': (452, b'4.2.2 Mailbox full')}",
    );
    assert.equal(server.mailboxes.get("alice@example.test")?.length, 1);
    assert.equal(server.mailboxes.get("bob@example.test")?.length, 1);
    assert.equal(server.mailboxes.get("full@example.test")?.length, 0);
  });

  test("swaks speaks LMTP over the socket", async (t) => {
    if (!requireProgram(t, "swaks")) return;
    const dir = await tempDir(t);
    const socketPath = join(dir, "lmtp.sock");
    const server = new MailboxLmtpd({ ...QUIET, socketPath });
    await server.start();
    t.after(() => server.stop({ gracefully: false }));
    const { stdout } = await run("swaks", [
      "--protocol",
      "LMTP",
      "--socket",
      socketPath,
      "--from",
      "a@x.test",
      "--to",
      "alice@example.test",
    ]);
    assert.match(stdout, /250 2\.0\.0 <alice@example\.test> delivered/);
  });

  test("TCP and a UNIX socket in one server", async (t) => {
    const dir = await tempDir(t);
    const socketPath = join(dir, "smtp.sock");
    const server = new SmtpServer({ ...QUIET, ports: 0, socketPath });
    await server.start();
    t.after(() => server.stop({ gracefully: false }));
    assert.equal(server.addresses.length, 2);
    const tcp = await RawClient.greeted(server.ports[0] as number);
    assert.match(await tcp.command("EHLO c"), /^250-/);
    tcp.close();
    const unix = await RawClient.connect(socketPath);
    assert.match(await unix.reply(), /^220 mx\.test ESMTP /);
    unix.close();
  });

  test("a missing directory fails start() with one sentence", async (t) => {
    const dir = await tempDir(t);
    const server = new SmtpServer({ ...QUIET, socketPath: join(dir, "no", "such", "x.sock") });
    await assert.rejects(
      server.start(),
      /^Error: Cannot listen on UNIX socket .*: the directory .* does not exist; create it first\.$/,
    );
  });

  test("a live server's socket is never taken over", async (t) => {
    const dir = await tempDir(t);
    const socketPath = join(dir, "live.sock");
    const first = new SmtpServer({ ...QUIET, socketPath });
    await first.start();
    t.after(() => first.stop({ gracefully: false }));
    const second = new SmtpServer({ ...QUIET, socketPath, socketReplaceStale: true });
    await assert.rejects(second.start(), /a server is already listening on it/);
    // The first one still serves.
    const client = await RawClient.connect(socketPath);
    assert.match(await client.reply(), /^220 /);
    client.close();
  });

  test("a stale socket file is refused unless socketReplaceStale, then replaced", async (t) => {
    const dir = await tempDir(t);
    const socketPath = join(dir, "stale.sock");
    // A process that listens and is killed leaves its socket file behind.
    const crashed = spawn(process.execPath, [
      "-e",
      `require("net").createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, "SIGKILL"))`,
    ]);
    await new Promise((resolve) => crashed.on("exit", resolve));
    assert.ok((await stat(socketPath)).isSocket());
    const refused = new SmtpServer({ ...QUIET, socketPath });
    await assert.rejects(refused.start(), /a stale socket file is there .*set socketReplaceStale\./);
    const replacing = new SmtpServer({ ...QUIET, socketPath, socketReplaceStale: true });
    await replacing.start();
    t.after(() => replacing.stop({ gracefully: false }));
    const client = await RawClient.connect(socketPath);
    assert.match(await client.reply(), /^220 /);
    client.close();
  });

  test("a file that is not a socket is in the way: refused, never deleted", async (t) => {
    const dir = await tempDir(t);
    const socketPath = join(dir, "file.sock");
    await writeFile(socketPath, "precious");
    const server = new SmtpServer({ ...QUIET, socketPath, socketReplaceStale: true });
    await assert.rejects(server.start(), /a file that is not a socket is in the way/);
    assert.equal(await readFile(socketPath, "utf8"), "precious");
  });

  test("stop() removes the socket file", async (t) => {
    const dir = await tempDir(t);
    const socketPath = join(dir, "gone.sock");
    const server = new SmtpServer({ ...QUIET, socketPath });
    await server.start();
    await server.stop();
    await assert.rejects(stat(socketPath), { code: "ENOENT" });
  });
});

describe("mailgate serve --lmtp", () => {
  test("stores what an LMTP client delivers over a socket in the Maildir", async (t) => {
    const dir = await tempDir(t);
    const socketPath = join(dir, "lmtp.sock");
    const main = new URL("../../src/cli/main.js", import.meta.url).pathname;
    const child = spawn(
      process.execPath,
      [main, "serve", "--lmtp", "--socket-path", socketPath, "--maildir", join(dir, "mail")],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    t.after(() => child.kill("SIGKILL"));
    let output = "";
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d) => {
        output += d;
        if (output.includes("is serving")) resolve();
      });
      child.on("exit", () => reject(new Error(output)));
    });
    assert.match(
      output,
      new RegExp(`serving LMTP on unix:${socketPath.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`),
    );
    const script = [
      "import smtplib, sys",
      "s = smtplib.LMTP(sys.argv[1])",
      "print(repr(s.sendmail('a@x.test', ['one@y.test', 'two@y.test'], b'Subject: via lmtp\\r\\n\\r\\nbody\\r\\n')))",
      "s.quit()",
    ].join("\n");
    const { stdout } = await run("python3", ["-c", script, socketPath]);
    assert.equal(stdout.trim(), "{}");
    const names = await readdir(join(dir, "mail", "new"));
    assert.equal(names.length, 1, "one stored copy for both recipients");
    const file = await readFile(join(dir, "mail", "new", names[0] as string));
    assert.deepEqual(parseEnvelopeHeaders(file).envelope, {
      from: "a@x.test",
      to: ["one@y.test", "two@y.test"],
    });
    assert.match(file.toString(), /with LMTP id /);
    assert.ok(file.toString().endsWith("Subject: via lmtp\r\n\r\nbody\r\n"));
  });
});

describe("Postfix's smtp-source speaking LMTP", () => {
  test("20 messages over 4 sessions, each recipient answered", async (t) => {
    const smtpSource = needProgram(t, "smtp-source", "postfix");
    if (!smtpSource) return;
    let delivered = 0;
    const server = new SmtpServer({
      ...QUIET,
      ports: 0,
      lmtp: true,
      onMessageData() {
        delivered++;
      },
    });
    await server.start();
    t.after(() => server.stop({ gracefully: false }));
    await run(smtpSource, [
      "-L",
      "-s",
      "4",
      "-m",
      "20",
      "-f",
      "a@x.test",
      "-t",
      "b@y.test",
      `127.0.0.1:${server.ports[0]}`,
    ]);
    assert.equal(delivered, 20);
  });
});
