/**
 * `mailgate serve` as a user runs it: a child process, real clients (Python smtplib, curl, swaks) over
 * loopback, real files in a Maildir.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { parseEnvelopeHeaders } from "../../src/store/maildir.js";
import { RawClient, waitFor } from "../helpers/clients.js";
import { requireProgram } from "../helpers/programs.js";
import { MAIN, printed, type Served, startServe } from "../helpers/serve-process.js";

const run = promisify(execFile);

async function storedMessages(maildir: string): Promise<Buffer[]> {
  const names = (await readdir(join(maildir, "new"))).sort();
  return Promise.all(names.map((name) => readFile(join(maildir, "new", name))));
}

function bodyOf(file: Buffer): Buffer {
  return file.subarray(parseEnvelopeHeaders(file).bodyOffset);
}

/** The stored bytes after our trace headers: the Received line we add, then the client's bytes. */
function clientBytes(file: Buffer): Buffer {
  const body = bodyOf(file);
  const text = body.toString("latin1");
  assert.match(text, /^Received: from /);
  const end = text.search(/\r\n(?![\t ])/); // end of the folded Received header
  return body.subarray(end + 2);
}

describe("mailgate serve", () => {
  let dir: string;
  let served: Served;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "mailgate-serve-"));
    served = await startServe(dir);
  });

  after(async () => {
    served.child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  });

  test("stores a message sent by Python's smtplib with its bytes intact", async () => {
    const message = Buffer.from(
      "Subject: py\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nh\xc3\xa9llo\r\n.dot\r\n",
      "latin1",
    );
    const script = [
      "import smtplib, sys",
      "s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))",
      "s.sendmail('py@x.test', ['one@y.test', 'two@y.test'], sys.stdin.buffer.read(), mail_options=['BODY=8BITMIME'])",
      "s.quit()",
    ].join("\n");
    const child = spawn("python3", ["-c", script, String(served.port)], {
      stdio: ["pipe", "inherit", "inherit"],
    });
    child.stdin.end(message);
    assert.equal(await new Promise((resolve) => child.on("exit", resolve)), 0);
    const files = await storedMessages(join(dir, "mail"));
    const file = files.find((f) => f.includes("py@x.test"));
    assert.ok(file, "the message is in new/");
    assert.deepEqual(parseEnvelopeHeaders(file).envelope, {
      from: "py@x.test",
      to: ["one@y.test", "two@y.test"],
    });
    // smtplib dot-stuffs ".dot"; the stored message has it unstuffed, exactly as the client meant it.
    assert.deepEqual(clientBytes(file), message);
  });

  test("stores a message uploaded by curl", async (t) => {
    if (!requireProgram(t, "curl")) return;
    const message = "Subject: curl\r\nFrom: c@x.test\r\n\r\nsent with curl\r\n";
    const file = join(dir, "curl.eml");
    await writeFile(file, message);
    await run("curl", [
      "-sS",
      `smtp://127.0.0.1:${served.port}`,
      "--mail-from",
      "curl@x.test",
      "--mail-rcpt",
      "r@y.test",
      "--upload-file",
      file,
    ]);
    const stored = (await storedMessages(join(dir, "mail"))).find((f) => f.includes("curl@x.test"));
    assert.ok(stored);
    assert.equal(clientBytes(stored).toString(), message);
  });

  test("stores a message sent by swaks with pipelining", async (t) => {
    if (!requireProgram(t, "swaks")) return;
    const { stdout } = await run("swaks", [
      "--server",
      "127.0.0.1",
      "--port",
      String(served.port),
      "--from",
      "swaks@x.test",
      "--to",
      "a@y.test,b@y.test",
      "--pipeline",
      "--header",
      "Subject: swaks",
      "--body",
      "sent with swaks",
    ]);
    assert.match(stdout, /250 2\.0\.0 Ok: stored as /);
    const stored = (await storedMessages(join(dir, "mail"))).find((f) => f.includes("swaks@x.test"));
    assert.ok(stored);
    assert.deepEqual(parseEnvelopeHeaders(stored).envelope.to, ["a@y.test", "b@y.test"]);
    assert.match(
      clientBytes(stored).toString(),
      /Subject: swaks\r\n[\s\S]*\r\n\r\nsent with swaks\r\n(\r\n)*$/,
    );
  });

  test("prints one line per accepted message", async () => {
    await printed(served, /Stored \S+ from <py@x\.test> for 2 recipient\(s\)/);
  });

  test("says at start which Maildir it stores into", () => {
    assert.match(served.output(), /mailgate is serving SMTP on \S+ into Maildir \/\S+\n/);
  });
});

describe("mailgate serve faults and signals", () => {
  test("a failed write answers 451, leaves nothing in new/, and the next message succeeds", async () => {
    const dir = await mkdtemp(join(tmpdir(), "mailgate-fault-"));
    const served = await startServe(dir);
    try {
      const maildir = join(dir, "mail");
      // Break the store: tmp/ becomes a file, so the temporary message cannot be created.
      await rm(join(maildir, "tmp"), { recursive: true });
      await writeFile(join(maildir, "tmp"), "not a directory");
      const send = (marker: string) =>
        run("python3", [
          "-c",
          [
            "import smtplib, sys",
            "s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))",
            "try:",
            "    s.sendmail('f@x.test', ['r@y.test'], 'Subject: ' + sys.argv[2] + '\\r\\n\\r\\nx\\r\\n')",
            "    print('accepted')",
            "except smtplib.SMTPDataError as e:",
            "    print('refused', e.smtp_code)",
            "s.quit()",
          ].join("\n"),
          String(served.port),
          marker,
        ]);
      assert.equal((await send("first")).stdout.trim(), "refused 451");
      assert.deepEqual(await readdir(join(maildir, "new")), []);
      await rm(join(maildir, "tmp"));
      await run("mkdir", [join(maildir, "tmp")]);
      assert.equal((await send("second")).stdout.trim(), "accepted");
      const stored = await storedMessages(maildir);
      assert.equal(stored.length, 1);
      assert.match(stored[0]?.toString() ?? "", /Subject: second/);
      assert.deepEqual(await readdir(join(maildir, "tmp")), []);
    } finally {
      served.child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    }
  });

  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    test(`${signal} stops the server gracefully with exit status 0`, async () => {
      const dir = await mkdtemp(join(tmpdir(), "mailgate-signal-"));
      try {
        const served = await startServe(dir);
        served.child.kill(signal);
        assert.equal(await served.exited, 0, served.output());
        assert.match(served.output(), /stopped/);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  test("a second stop signal, of either kind, kills at once while a message holds the graceful stop", async () => {
    const dir = await mkdtemp(join(tmpdir(), "mailgate-signal-"));
    const served = await startServe(dir);
    let client: RawClient | undefined;
    try {
      const killed = new Promise((resolve) => served.child.once("exit", (_code, signal) => resolve(signal)));
      client = await RawClient.greeted(served.port);
      assert.match(await client.command("EHLO client.test"), /^250 /m);
      assert.match(await client.command("MAIL FROM:<a@example.org>"), /^250 /);
      assert.match(await client.command("RCPT TO:<b@example.com>"), /^250 /);
      assert.match(await client.command("DATA"), /^354 /);
      client.write("Subject: unfinished\r\n");
      served.child.kill("SIGTERM"); // the graceful stop waits for the message in progress
      await waitFor(() => /stopping gracefully/.test(served.output()), "the graceful stop to begin", 10_000);
      served.child.kill("SIGINT");
      assert.equal(await killed, "SIGINT", served.output());
    } finally {
      client?.drop();
      served.child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a bad flag prints one sentence and the usage line, and exits 2", async () => {
    const result = await run(process.execPath, [MAIN, "serve", "--crlf-mode", "sloppy"]).catch((e) => e);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      'mailgate: Invalid value for --crlf-mode: "sloppy"; it accepts one of ensure, leave, strict.\nUsage: mailgate serve [--config FILE] [options]   (mailgate serve --help lists them)\n       mailgate config check FILE\n       mailgate hash-password < password-file\n',
    );
  });

  for (const [args, sentence] of [
    [
      ["--max-connections", "-5"],
      'mailgate: --max-connections needs a value; one that starts with "-" is written --max-connections=VALUE.',
    ],
    [
      ["--max-connections=-5"],
      'mailgate: Invalid value for --max-connections: "-5"; it accepts a whole number.',
    ],
    [
      ["--max-connections", "5"],
      "mailgate: Invalid value for --max-connections: 5 is lower than --max-processings (100); it must be at least as high.",
    ],
    [["--ports", ""], 'mailgate: Invalid --ports "": give one or more comma-separated items'],
    [["--hosts", "127.0.0.1:2525"], 'mailgate: Invalid --hosts item "127.0.0.1:2525": each host must be'],
    [["--tls-min-version", "TLSv9"], 'mailgate: Invalid --tls-min-version "TLSv9": give one of'],
    [["--tls-cert-path", "x.pem"], "mailgate: Invalid options --tls-cert-path and --tls-key-path: give both"],
    [
      ["--ports", "2681", "--tls-ports", "9999"],
      "mailgate: Invalid value for --tls-ports: port 9999 is not one of ports",
    ],
    [["--auth-users", "users"], "mailgate: --auth-users needs --auth-mode optional or required"],
  ] as const) {
    test(`serve ${args.join(" ")}: one sentence in flag terms, exit 2`, async () => {
      const result = await run(process.execPath, [
        MAIN,
        "serve",
        ...args,
        "--maildir",
        "/nonexistent/never-used",
      ]).catch((e) => e);
      assert.equal(result.code, 2, result.stderr);
      assert.ok(result.stderr.startsWith(sentence), result.stderr);
      assert.match(result.stderr, /\.\nUsage: mailgate serve/);
    });
  }

  test("hash-password refuses arguments (the password comes on stdin only)", async () => {
    const result = await run(process.execPath, [MAIN, "hash-password", "s3cret"]).catch((e) => e);
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /^mailgate: hash-password takes no arguments: it reads the password on stdin\.\n/,
    );
  });

  test("--help lists every flag with its default", async () => {
    const { stdout } = await run(process.execPath, [MAIN, "serve", "--help"]);
    for (const flag of [
      "--maildir",
      "--ports",
      "--hosts",
      "--max-connections",
      "--crlf-mode",
      "--[no-]pipelining",
    ]) {
      assert.ok(stdout.includes(flag), `${flag} is listed`);
    }
    assert.match(stdout, /\(default: 2525\)/);
  });

  test("a port in use fails with one sentence and exit status 1", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const address = blocker.address();
    const port = typeof address === "object" && address ? address.port : 0;
    const dir = await mkdtemp(join(tmpdir(), "mailgate-busy-"));
    try {
      const result = await run(process.execPath, [MAIN, "serve", "--ports", String(port)], {
        cwd: dir,
      }).catch((e) => e);
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        /^mailgate: Cannot listen on 127\.0\.0\.1:\d+: the address is already in use/m,
      );
      assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
    } finally {
      blocker.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("mailgate serve with TLS and accounts", () => {
  test("hash-password, --auth-users: STARTTLS + login stores the message; a wrong password gets 535", async () => {
    const dir = await mkdtemp(join(tmpdir(), "mailgate-auth-"));
    try {
      const hashing = spawn(process.execPath, [MAIN, "hash-password"], {
        stdio: ["pipe", "pipe", "inherit"],
      });
      hashing.stdin.end("s3cret pass\n");
      let hash = "";
      hashing.stdout.on("data", (d) => {
        hash += d;
      });
      await new Promise((resolve) => hashing.on("exit", resolve));
      assert.match(hash, /^scrypt\$/);
      assert.ok(!hash.includes("s3cret"));
      await writeFile(join(dir, "users"), `# test accounts\nalice:${hash.trim()}\n`);
      const served = await startServe(dir, [
        "--tls-mode",
        "required",
        "--auth-mode",
        "required",
        "--auth-users",
        join(dir, "users"),
      ]);
      try {
        const script = [
          "import smtplib, ssl, sys",
          "ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE",
          "s = smtplib.SMTP('127.0.0.1', int(sys.argv[1])); s.starttls(context=ctx)",
          "try:",
          "    s.login('alice', 'wrong')",
          "except smtplib.SMTPAuthenticationError as e:",
          "    print('refused', e.smtp_code)",
          "s.login('alice', 's3cret pass')",
          "s.sendmail('alice@x.test', ['b@y.test'], b'Subject: authed\\r\\n\\r\\nhi\\r\\n')",
          "s.quit()",
        ].join("\n");
        const { stdout } = await run("python3", ["-c", script, String(served.port)]);
        assert.equal(stdout.trim(), "refused 535");
        const stored = await storedMessages(join(dir, "mail"));
        assert.equal(stored.length, 1);
        assert.match(
          stored[0]?.toString() ?? "",
          /with ESMTPSA id \S+\r\n\tfor <b@y\.test>\r\n\t\(version=TLSv1\.[23] cipher=/,
        );
        assert.doesNotMatch(served.output(), /s3cret/);
      } finally {
        served.child.kill("SIGKILL");
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
