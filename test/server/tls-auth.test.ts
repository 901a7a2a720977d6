/**
 * STARTTLS, implicit TLS and AUTH with real clients over loopback: nodemailer, Python's smtplib,
 * openssl s_client and swaks; plus the attacks: STARTTLS command injection, AUTH in plaintext, brute force.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { describe, type TestContext, test } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { promisify } from "node:util";
import nodemailer from "nodemailer";
import type { SessionContext } from "../../src/protocol/context.js";
import { SmtpError } from "../../src/protocol/errors.js";
import { SmtpServer, type SmtpServerOptions } from "../../src/server/server.js";
import { freePort, RawClient } from "../helpers/clients.js";
import { requireProgram } from "../helpers/programs.js";
import { openSession } from "../helpers/session-harness.js";

const run = promisify(execFile);

interface Started {
  server: SmtpServer;
  port: number;
  messages: { from: string; user: string; encrypted: boolean; protocol: string | undefined }[];
  logs: string[];
}

async function start(t: TestContext, options: SmtpServerOptions = {}): Promise<Started> {
  const messages: Started["messages"] = [];
  const logs: string[] = [];
  const server = new SmtpServer({
    ports: 0,
    hostname: "mx.test",
    tlsMode: "optional",
    authMode: "optional",
    logger: {
      debug: (m) => logs.push(m),
      info: (m) => logs.push(m),
      warn: (m) => logs.push(m),
      error: (m) => logs.push(m),
    },
    loggerSeverity: "debug",
    onAuth(_ctx: SessionContext, _authz: string, user: string, secret: string) {
      if (user === "alice" && secret === "s3cret pass") return user;
      throw SmtpError.code(535);
    },
    onMessageData(ctx) {
      messages.push({
        from: ctx.envelope.from,
        user: ctx.server.authenticationId,
        encrypted: ctx.server.encrypted !== null,
        protocol: ctx.server.tls?.protocol,
      });
    },
    ...options,
  });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  return { server, port: server.ports[0] as number, messages, logs };
}

describe("STARTTLS and AUTH with real clients", () => {
  test("nodemailer: STARTTLS then AUTH PLAIN and AUTH LOGIN", async (t) => {
    const s = await start(t);
    for (const method of ["PLAIN", "LOGIN"]) {
      const transport = nodemailer.createTransport({
        host: "127.0.0.1",
        port: s.port,
        secure: false,
        requireTLS: true,
        tls: { rejectUnauthorized: false },
        auth: { user: "alice", pass: "s3cret pass", method },
      });
      await transport.sendMail({ from: "a@x.test", to: "b@y.test", subject: method, text: "hi" });
      transport.close();
    }
    assert.equal(s.messages.length, 2);
    for (const m of s.messages) {
      assert.equal(m.user, "alice");
      assert.equal(m.encrypted, true);
      assert.match(m.protocol ?? "", /^TLSv1\.[23]$/);
    }
    assert.ok(!s.logs.some((line) => line.includes("s3cret")), "the password never reaches the log");
  });

  test("nodemailer: implicit TLS (SMTPS) on a tlsPorts port", async (t) => {
    const port = await freePort();
    const s = await start(t, { ports: port, tlsPorts: String(port) });
    const transport = nodemailer.createTransport({
      host: "127.0.0.1",
      port: s.port,
      secure: true,
      tls: { rejectUnauthorized: false },
      auth: { user: "alice", pass: "s3cret pass" },
    });
    await transport.sendMail({ from: "a@x.test", to: "b@y.test", subject: "smtps", text: "hi" });
    transport.close();
    assert.equal(s.messages[0]?.encrypted, true);
  });

  test("Python smtplib: starttls() and login(), and SMTP_SSL", async (t) => {
    const s = await start(t);
    const script = [
      "import smtplib, ssl, sys",
      "ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE",
      "s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))",
      "s.starttls(context=ctx)",
      "s.login('alice', 's3cret pass')",
      "s.sendmail('py@x.test', ['b@y.test'], b'Subject: py\\r\\n\\r\\nhi\\r\\n')",
      "s.quit()",
      "try:",
      "    s = smtplib.SMTP('127.0.0.1', int(sys.argv[1])); s.starttls(context=ctx); s.login('alice', 'wrong')",
      "except smtplib.SMTPAuthenticationError as e:",
      "    print('refused', e.smtp_code)",
    ].join("\n");
    const { stdout } = await run("python3", ["-c", script, String(s.port)]);
    assert.equal(stdout.trim(), "refused 535");
    assert.equal(s.messages[0]?.from, "py@x.test");
  });

  test("openssl s_client -starttls smtp verifies the generated certificate for localhost.local", async (t) => {
    if (!requireProgram(t, "openssl")) return;
    const s = await start(t);
    const cert = s.server.tls?.certificatePem as string;
    const { writeFile, mkdtemp, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const dir = await mkdtemp(`${tmpdir()}/mailgate-tls-`);
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(`${dir}/ca.pem`, cert);
    const child = spawn(
      "openssl",
      [
        "s_client",
        "-starttls",
        "smtp",
        "-connect",
        `127.0.0.1:${s.port}`,
        "-CAfile",
        `${dir}/ca.pem`,
        "-verify_hostname",
        "localhost.local",
        "-quiet",
      ],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    let err = "";
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.stdin.write("EHLO openssl.test\r\n");
    setTimeout(() => child.stdin.end("QUIT\r\n"), 300);
    await new Promise((resolve) => child.on("exit", resolve));
    assert.match(err, /verify return:1/);
    assert.match(out, /250-mx\.test at your service[\s\S]*250-AUTH PLAIN LOGIN/);
    assert.doesNotMatch(out, /STARTTLS/, "STARTTLS is no longer offered inside TLS");
  });

  test("swaks with --tls and --auth", async (t) => {
    if (!requireProgram(t, "swaks")) return;
    const s = await start(t);
    const { stdout } = await run("swaks", [
      "--server",
      "127.0.0.1",
      "--port",
      String(s.port),
      "--tls",
      "--auth",
      "LOGIN",
      "--auth-user",
      "alice",
      "--auth-password",
      "s3cret pass",
      "--from",
      "swaks@x.test",
      "--to",
      "b@y.test",
    ]).catch((error) => ({ stdout: `${error.stdout}${error.stderr}` }));
    assert.match(stdout, /235 2\.7\.0 Authentication successful/);
    assert.equal(s.messages[0]?.from, "swaks@x.test");
  });
});

describe("TLS and AUTH safety", () => {
  test("STARTTLS command injection: bytes after STARTTLS are never executed (CVE-2011-0411)", async (t) => {
    const s = await start(t);
    const client = await RawClient.greeted(s.port);
    await client.command("EHLO c");
    client.write("STARTTLS\r\nEHLO injected\r\nMAIL FROM:<injected@x.test>\r\n");
    assert.equal(await client.reply(), "220 2.0.0 Ready to start TLS\r\n");
    const secured = tlsConnect({ socket: client.socket, rejectUnauthorized: false });
    await new Promise((resolve) => secured.once("secureConnect", resolve));
    let received = "";
    secured.on("data", (d) => {
      received += d;
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(received, "", "no reply to the injected commands, before or after the handshake");
    secured.write("RCPT TO:<b@y.test>\r\n");
    while (!received.endsWith("\r\n")) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(received, "503 5.5.1 Error: need MAIL command\r\n", "the injected MAIL never ran");
    secured.destroy();
  });

  test("after STARTTLS: nothing unprompted, MAIL first gets 503, EHLO no longer offers STARTTLS; STARTTLS x gets 501", async (t) => {
    const s = await start(t);
    const client = await RawClient.greeted(s.port);
    assert.match(await client.command("EHLO c"), /250-STARTTLS\r\n/);
    assert.equal(await client.command("STARTTLS x"), "501 5.5.4 Syntax: STARTTLS takes no arguments\r\n");
    client.write("STARTTLS\r\n");
    assert.equal(await client.reply(), "220 2.0.0 Ready to start TLS\r\n");
    const secured = tlsConnect({ socket: client.socket, rejectUnauthorized: false });
    await new Promise((resolve) => secured.once("secureConnect", resolve));
    let received = "";
    secured.on("data", (d) => {
      received += d;
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(received, "", "nothing unprompted after the handshake");
    const ask = async (line: string) => {
      received = "";
      secured.write(`${line}\r\n`);
      while (!/^\d{3} .*\r\n$/m.test(received)) await new Promise((resolve) => setTimeout(resolve, 5));
      return received;
    };
    assert.equal(await ask("MAIL FROM:<a@x.test>"), "503 5.5.1 Error: send HELO/EHLO first\r\n");
    const ehlo = await ask("EHLO c");
    assert.doesNotMatch(ehlo, /STARTTLS/);
    assert.match(ehlo, /250-AUTH PLAIN LOGIN\r\n/);
    assert.equal(await ask("STARTTLS"), "503 5.5.1 Error: TLS is already active\r\n");
    secured.destroy();
  });

  test("tlsMode required: MAIL, RCPT, DATA, RSET and AUTH before TLS get 530 5.7.0", async (t) => {
    const s = await start(t, { tlsMode: "required" });
    const client = await RawClient.greeted(s.port);
    await client.command("EHLO c");
    for (const command of ["MAIL FROM:<a@x.test>", "RSET", "AUTH PLAIN"]) {
      assert.equal(
        await client.command(command),
        "530 5.7.0 Must issue a STARTTLS command first\r\n",
        command,
      );
    }
    client.close();
  });

  test("AUTH over plaintext is neither offered nor accepted (538) unless authOverPlaintext", async (t) => {
    const s = await start(t);
    const client = await RawClient.greeted(s.port);
    assert.doesNotMatch(await client.command("EHLO c"), /AUTH/);
    assert.match(await client.command("AUTH PLAIN AGFsaWNlAHMzY3JldCBwYXNz"), /^538 5\.7\.11 /);
    client.close();
    assert.throws(
      () => new SmtpServer({ authMode: "optional" }),
      /^TypeError: Invalid option authMode: AUTH needs TLS/,
    );
  });

  test("authMode required: MAIL before AUTH gets 530; failures end in 421 after maxAuthFailures", async () => {
    const t = await openSession({
      config: {
        auth: { mode: "required", mechanisms: ["PLAIN", "LOGIN"], overPlaintext: true, maxFailures: 3 },
      },
    });
    await t.send("EHLO c\r\n");
    assert.equal(await t.send("MAIL FROM:<a@x.test>\r\n"), "530 5.7.0 Authentication required\r\n");
    const bad = Buffer.from("\0alice\0wrong").toString("base64");
    assert.match(await t.send(`AUTH PLAIN ${bad}\r\n`), /^535 5\.7\.8 /);
    assert.equal(await t.send("AUTH PLAIN\r\n"), "334 \r\n");
    assert.equal(await t.send("*\r\n"), "501 5.0.0 Authentication cancelled\r\n");
    assert.equal(
      await t.send("AUTH PLAIN not-base64!\r\n"),
      "501 5.5.2 Cannot decode response: invalid base64\r\n421 4.7.0 mx.test Error: too many authentication failures\r\n",
    );
    assert.equal(t.closed, true);
  });

  test("AUTH LOGIN exchange, a 12,288-octet response accepted by the reader, longer refused with 500 5.5.6", async () => {
    const accepted: string[] = [];
    const t = await openSession({
      config: {
        auth: { mode: "optional", mechanisms: ["PLAIN", "LOGIN"], overPlaintext: true, maxFailures: 5 },
      },
      hooks: {
        onAuth: (_ctx, _authz, user) => {
          accepted.push(user);
          return undefined;
        },
      },
    });
    await t.send("EHLO c\r\n");
    assert.equal(await t.send("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
    assert.equal(
      await t.send(`${"x".repeat(12_289)}\r\n`),
      "500 5.5.6 Authentication exchange line is too long\r\n",
    );
    assert.equal(await t.send("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
    assert.equal(await t.send(`${Buffer.from("bob").toString("base64")}\r\n`), "334 UGFzc3dvcmQ6\r\n");
    assert.equal(
      await t.send(`${Buffer.from("pw").toString("base64")}\r\n`),
      "235 2.7.0 Authentication successful\r\n",
    );
    assert.deepEqual(accepted, ["bob"]);
    assert.equal(t.ctx.server.authenticationId, "bob");
    assert.equal(t.ctx.server.authMechanism, "LOGIN");
    assert.equal(await t.send("AUTH PLAIN\r\n"), "503 5.5.1 Error: already authenticated\r\n");
    await t.send("MAIL FROM:<a@x.test>\r\n");
    assert.equal(await t.send("RSET\r\n"), "250 2.0.0 Ok\r\n");
  });

  test("AUTH inside a transaction: 503; an AUTH challenge followed by pipelined input: 554", async () => {
    const t = await openSession({
      config: { auth: { mode: "optional", mechanisms: ["PLAIN"], overPlaintext: true, maxFailures: 5 } },
    });
    await t.send("EHLO c\r\n");
    await t.send("MAIL FROM:<a@x.test>\r\n");
    assert.equal(await t.send("AUTH PLAIN\r\n"), "503 5.5.1 Error: AUTH is not allowed in a transaction\r\n");
    await t.send("RSET\r\n");
    assert.equal(
      await t.send("AUTH PLAIN\r\nNOOP\r\n"),
      "554 5.5.0 Error: SMTP protocol synchronization\r\n",
    );
  });
});

describe("certificates, SNI and more mechanisms", () => {
  async function files(
    t: TestContext,
    cn: string,
    options: { days?: number; notAfter?: Date; notBefore?: Date } = {},
  ) {
    const { generateSelfSignedCertificate } = await import("../../src/tls/certificates.js");
    const { writeFile, mkdtemp, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const dir = await mkdtemp(`${tmpdir()}/mailgate-cert-`);
    t.after(() => rm(dir, { recursive: true, force: true }));
    const { cert, key } = await generateSelfSignedCertificate({ cn, san: [cn], ...options });
    await writeFile(`${dir}/cert.pem`, cert);
    await writeFile(`${dir}/key.pem`, key);
    return { certPath: `${dir}/cert.pem`, keyPath: `${dir}/key.pem`, cert, key };
  }

  test("Python smtplib.SMTP_SSL on an implicit TLS port", async (t) => {
    const port = await freePort();
    const s = await start(t, { ports: port, tlsPorts: String(port) });
    const script = [
      "import smtplib, ssl, sys",
      "ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE",
      "s = smtplib.SMTP_SSL('127.0.0.1', int(sys.argv[1]), context=ctx)",
      "s.login('alice', 's3cret pass')",
      "s.sendmail('ssl@x.test', ['b@y.test'], b'Subject: ssl\\r\\n\\r\\nhi\\r\\n')",
      "s.quit()",
    ].join("\n");
    await run("python3", ["-c", script, String(s.port)]);
    assert.equal(s.messages[0]?.from, "ssl@x.test");
    assert.equal(s.messages[0]?.encrypted, true);
  });

  test("SNI picks the certificate of the name the client asks for", async (t) => {
    const main = await files(t, "mx.default.test");
    const other = await files(t, "mail.example.test");
    const s = await start(t, {
      tlsCertPath: main.certPath,
      tlsKeyPath: main.keyPath,
      tlsSniCertificates: `mail.example.test=${other.certPath}:${other.keyPath}`,
    });
    for (const [servername, ca] of [
      ["mail.example.test", other.cert],
      ["mx.default.test", main.cert],
    ] as const) {
      const client = await RawClient.greeted(s.port);
      await client.command("EHLO c");
      assert.equal(await client.command("STARTTLS"), "220 2.0.0 Ready to start TLS\r\n");
      const secured = tlsConnect({ socket: client.socket, servername, ca });
      await new Promise((resolve, reject) => {
        secured.once("secureConnect", resolve);
        secured.once("error", reject);
      });
      assert.equal(secured.authorized, true, `${servername} verifies against its own certificate`);
      secured.destroy();
    }
  });

  test("an expired certificate or a key that does not match fails start() with one sentence", async (t) => {
    const expired = await files(t, "old.test", {
      notBefore: new Date(Date.now() - 10 * 86400_000),
      notAfter: new Date(Date.now() - 86400_000),
    });
    const other = await files(t, "other.test");
    const expiredServer = new SmtpServer({
      ports: 0,
      tlsMode: "optional",
      tlsCertPath: expired.certPath,
      tlsKeyPath: expired.keyPath,
    });
    await assert.rejects(expiredServer.start(), /expired/);
    const mismatched = new SmtpServer({
      ports: 0,
      tlsMode: "optional",
      tlsCertPath: expired.certPath,
      tlsKeyPath: other.keyPath,
    });
    await assert.rejects(mismatched.start(), /does not match|not match/);
    assert.equal(mismatched.addresses.length, 0, "nothing stays bound");
  });

  test("CRAM-MD5 verified by the hook with the password, and XOAUTH2 giving the token to the hook", async () => {
    const { createHmac } = await import("node:crypto");
    const t = await openSession({
      config: {
        auth: { mode: "optional", mechanisms: ["CRAM-MD5", "XOAUTH2"], overPlaintext: true, maxFailures: 5 },
      },
      hooks: {
        onAuth: (_ctx, _authz, user, secret, mechanism, credentials) => {
          if (mechanism === "CRAM-MD5" && credentials.verifyPassword?.("tanstaaftanstaaf")) return user;
          if (mechanism === "XOAUTH2" && secret === "ya29.token") return user;
          throw SmtpError.code(535);
        },
      },
    });
    assert.match(await t.send("EHLO c\r\n"), /250-AUTH CRAM-MD5 XOAUTH2\r\n/);
    const challenge = (await t.send("AUTH CRAM-MD5\r\n")).slice(4).trim();
    const digest = createHmac("md5", "tanstaaftanstaaf")
      .update(Buffer.from(challenge, "base64"))
      .digest("hex");
    assert.equal(
      await t.send(`${Buffer.from(`tim ${digest}`).toString("base64")}\r\n`),
      "235 2.7.0 Authentication successful\r\n",
    );
    const other = await openSession({
      config: { auth: { mode: "optional", mechanisms: ["XOAUTH2"], overPlaintext: true, maxFailures: 5 } },
      hooks: {
        onAuth: (_ctx, _a, user, secret) =>
          secret === "ya29.token" ? user : Promise.reject(SmtpError.code(535)),
      },
    });
    await other.send("EHLO c\r\n");
    const xoauth = Buffer.from("user=bob@x.test\x01auth=Bearer ya29.token\x01\x01").toString("base64");
    assert.equal(await other.send(`AUTH XOAUTH2 ${xoauth}\r\n`), "235 2.7.0 Authentication successful\r\n");
    assert.equal(other.ctx.server.authenticationId, "bob@x.test");
  });
});

describe("REQUIRETLS", () => {
  test("offered and accepted only inside TLS, recorded in the envelope", async (t) => {
    let required: boolean | undefined;
    const s = await start(t, {
      onMessageData(ctx) {
        required = ctx.envelope.requireTls;
      },
    });
    const client = await RawClient.greeted(s.port);
    assert.doesNotMatch(await client.command("EHLO c"), /REQUIRETLS/);
    assert.equal(
      await client.command("MAIL FROM:<a@x.test> REQUIRETLS"),
      "530 5.7.10 REQUIRETLS needs a TLS connection\r\n",
    );
    assert.equal(await client.command("STARTTLS"), "220 2.0.0 Ready to start TLS\r\n");
    const secured = tlsConnect({ socket: client.socket, rejectUnauthorized: false });
    await new Promise((resolve) => secured.once("secureConnect", resolve));
    let received = "";
    secured.on("data", (d) => {
      received += d;
    });
    const ask = async (line: string) => {
      received = "";
      secured.write(line);
      while (!/^\d{3} .*\r\n$/m.test(received)) await new Promise((resolve) => setTimeout(resolve, 5));
      return received;
    };
    assert.match(await ask("EHLO c\r\n"), /250-REQUIRETLS\r\n/);
    assert.equal(await ask("MAIL FROM:<a@x.test> REQUIRETLS\r\n"), "250 2.1.0 Ok\r\n");
    await ask("RCPT TO:<b@y.test>\r\n");
    await ask("DATA\r\n");
    assert.equal(await ask("Subject: x\r\n\r\nhi\r\n.\r\n"), "250 2.0.0 Ok: message accepted\r\n");
    assert.equal(required, true);
    secured.destroy();
  });
});
