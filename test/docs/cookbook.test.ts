/**
 * Every recipe of docs/cookbook.md runs here, from its file in examples/cookbook/, over loopback on port 0
 * with real clients (a raw one, nodemailer). The LMTP recipe runs in test/server/lmtp.test.ts (Python's
 * smtplib.LMTP and swaks over its UNIX socket); the port-0 recipe is a test itself, registered here.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import nodemailer from "nodemailer";
import { NormalizingSmtpd } from "../../examples/cookbook/address-rewriting.js";
import { SubmissionSmtpd } from "../../examples/cookbook/auth.js";
import { createLimitedServer, utilization } from "../../examples/cookbook/connections-and-processings.js";
import { HandOffSmtpd } from "../../examples/cookbook/hand-off-before-250.js";
import { createMultiPortServer } from "../../examples/cookbook/ports-and-hosts.js";
import { SizeGuardSmtpd } from "../../examples/cookbook/size-guard.js";
import { GuardedSmtpd } from "../../examples/cookbook/spam-guards.js";
import { TlsOnlySmtpd } from "../../examples/cookbook/starttls.js";
import { MySmtpd } from "../../examples/cookbook/subclassing.js";
import { TeergrubeSmtpd } from "../../examples/cookbook/teergrube.js";
import "../../examples/cookbook/test-on-port-0.js";
import { TracingSmtpd } from "../../examples/cookbook/trace-headers.js";
import { GreetingSmtpd } from "../../examples/cookbook/welcome-and-greeting.js";
import { MaildirStore, parseEnvelopeHeaders } from "../../src/index.js";
import { RawClient, waitFor } from "../helpers/clients.js";
import { QUIET, record, started, transaction } from "../helpers/example-servers.js";

describe("cookbook", () => {
  test("subclassing: nodemailer's message is in the inbox, the blocked recipient refused with 550", async (t) => {
    const server = new MySmtpd(QUIET);
    const port = await started(t, server);
    const transport = nodemailer.createTransport({ host: "127.0.0.1", port, secure: false });
    t.after(() => transport.close());
    const info = await transport.sendMail({
      from: "alice@example.org",
      to: ["bob@example.com", "blocked@example.com"],
      subject: "hi",
      text: "hello",
    });
    assert.deepEqual(info.rejected, ["blocked@example.com"]);
    assert.match(info.rejectedErrors?.[0]?.response ?? "", /^550 5\.1\.1 /);
    assert.deepEqual(
      server.inbox.map((m) => [m.from, m.to]),
      [["alice@example.org", ["bob@example.com"]]],
    );
    assert.match(server.inbox[0]?.data.toString("utf8") ?? "", /\r\n\r\nhello\r\n$/);
  });

  test("ports-and-hosts: one host, two ports ('0:0'), both answer", async (t) => {
    const server = createMultiPortServer({ ...QUIET, ports: "0:0" });
    await started(t, server);
    assert.equal(server.ports.length, 2);
    for (const port of server.ports) {
      const client = await RawClient.greeted(port);
      assert.match(await client.command("EHLO client.test"), /^250-mx\.test /);
      client.close();
    }
  });

  test("connections-and-processings: the second session waits for a slot, the third connection gets 421", async (t) => {
    const server = createLimitedServer({ ...QUIET, maxProcessings: 1, maxConnections: 2 });
    const port = await started(t, server);
    const first = await RawClient.greeted(port);
    const second = await RawClient.connect(port);
    await waitFor(() => server.connections === 2, "two connections");
    assert.deepEqual(utilization(server), { connections: 100, processings: 100 });
    const third = await RawClient.connect(port);
    assert.match(await third.reply(), /^421 4\.7\.0 /);
    await first.command("QUIT");
    assert.match(await second.reply(), /^220 /, "greeted once the first session ended");
    second.close();
  });

  test("welcome-and-greeting: the 220 and the EHLO answer carry the hooks' texts", async (t) => {
    const port = await started(t, new GreetingSmtpd(QUIET));
    const client = await RawClient.connect(port);
    assert.equal(await client.reply(), "220 mx.test ESMTP mailgate, hello 127.0.0.1\r\n");
    assert.match(await client.command("EHLO client.test"), /^250-mx\.test welcomes client\.test\r\n/);
    client.close();
  });

  test("address-rewriting lower-cases MAIL FROM and RCPT TO", async (t) => {
    const server = new NormalizingSmtpd(QUIET);
    const seen = record(server);
    const client = await RawClient.greeted(await started(t, server));
    await client.command("EHLO client.test");
    const replies = await transaction(
      client,
      "Alice@Example.TEST",
      ["Bob@Example.TEST"],
      "Subject: x\r\n\r\nhi\r\n",
    );
    assert.equal(replies.at(-1), "250 2.0.0 Ok: message accepted\r\n");
    assert.deepEqual(seen[0]?.from, "alice@example.test");
    assert.deepEqual(seen[0]?.to, ["bob@example.test"]);
    client.close();
  });

  test("trace-headers puts Received first and X-MyHeader right before the empty line", async (t) => {
    const server = new TracingSmtpd(QUIET);
    const seen = record(server);
    const client = await RawClient.greeted(await started(t, server));
    await client.command("EHLO client.test");
    await transaction(client, "a@x.test", ["b@y.test"], "Subject: x\r\nFrom: a@x.test\r\n\r\nbody\r\n");
    const data = seen[0]?.data ?? "";
    assert.match(
      data,
      /^Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby \S+ \(mailgate\) with ESMTP\r\n\tfor <b@y\.test>;\r\n\t[A-Z][a-z]{2}, \d+ [A-Z][a-z]{2} \d{4} [\d:]{8} \+0000\r\n/,
    );
    assert.ok(data.endsWith("Subject: x\r\nFrom: a@x.test\r\nX-MyHeader: 1.0\r\n\r\nbody\r\n"), data);
    client.close();
  });

  test("spam-guards: 550 for a blocked recipient, the others kept", async (t) => {
    const server = new GuardedSmtpd(QUIET);
    const seen = record(server);
    const client = await RawClient.greeted(await started(t, server));
    await client.command("EHLO client.test");
    const replies = await transaction(client, "a@x.test", ["not.name@domain.con", "ok@y.test"], "hi\r\n");
    assert.match(replies[1] ?? "", /^550 5\.1\.1 /);
    assert.equal(replies[2], "250 2.1.5 Ok\r\n");
    assert.deepEqual(seen[0]?.to, ["ok@y.test"]);
    client.close();
  });

  test("spam-guards: 421 drops an identified spammer at once", async (t) => {
    const client = await RawClient.greeted(await started(t, new GuardedSmtpd(QUIET)));
    await client.command("EHLO client.test");
    await client.command("MAIL FROM:<a@x.test>");
    assert.match(await client.command("RCPT TO:<spam.trap@domain.con>"), /^421 /);
    await client.untilEnd();
  });

  test("spam-guards: 421 after too many unknown commands", async (t) => {
    const client = await RawClient.greeted(await started(t, new GuardedSmtpd(QUIET)));
    for (let i = 0; i < 5; i++) assert.match(await client.command(`JUNK${i}`), /^500 5\.5\.2 /);
    assert.match(await client.command("JUNK5"), /^421 /);
    await client.untilEnd();
  });

  test("size-guard: 552 once the message grows too big, after its end; the session goes on", async (t) => {
    const server = new SizeGuardSmtpd(QUIET, 10_000);
    const seen = record(server);
    const client = await RawClient.greeted(await started(t, server));
    await client.command("EHLO client.test");
    const big = `Subject: big\r\n\r\n${"x".repeat(998)}\r\n`.repeat(20);
    const replies = await transaction(client, "a@x.test", ["b@y.test"], big);
    assert.match(replies.at(-1) ?? "", /^552 5\.3\.4 /);
    assert.equal(seen.length, 0);
    const again = await transaction(client, "a@x.test", ["b@y.test"], "Subject: small\r\n\r\nok\r\n");
    assert.equal(again.at(-1), "250 2.0.0 Ok: message accepted\r\n");
    client.close();
  });

  test("teergrube: a client whose HELO matches is slowed down, and its message still accepted", async (t) => {
    const client = await RawClient.greeted(await started(t, new TeergrubeSmtpd(QUIET, 150)));
    await client.command("EHLO spammer.domain.test");
    const begin = Date.now();
    const replies = await transaction(client, "a@x.test", ["b@y.test"], "Subject: x\r\n\r\nhi\r\n");
    assert.equal(replies.at(-1), "250 2.0.0 Ok: message accepted\r\n");
    assert.ok(Date.now() - begin >= 140, "the teergrube delayed the message");
    client.close();
  });

  test("auth: relaying needs AUTH (inside STARTTLS, with the generated certificate); local mail does not", async (t) => {
    const server = new SubmissionSmtpd(QUIET, new Map([["alice", "a long passphrase"]]));
    const seen = record(server);
    const port = await started(t, server);
    const tls = { ca: server.tls?.certificatePem, servername: "mx.test" };
    const send = async (auth?: { user: string; pass: string }) => {
      const transport = nodemailer.createTransport({ host: "127.0.0.1", port, requireTLS: true, tls, auth });
      try {
        return await transport.sendMail({ from: "alice@example.com", to: "carol@elsewhere.test", text: "x" });
      } finally {
        transport.close();
      }
    };
    await assert.rejects(send(), /554 5\.7\.1 Relay access denied/);
    await assert.rejects(send({ user: "alice", pass: "wrong" }), /535 5\.7\.8 /);
    await send({ user: "alice", pass: "a long passphrase" });
    const local = nodemailer.createTransport({ host: "127.0.0.1", port, requireTLS: true, tls });
    await local.sendMail({ from: "someone@elsewhere.test", to: "bob@example.com", text: "x" });
    local.close();
    assert.deepEqual(
      seen.map((m) => m.to),
      [["carol@elsewhere.test"], ["bob@example.com"]],
    );
  });

  test("starttls: plaintext MAIL gets 530; over STARTTLS the client trusts server.tls.certificatePem", async (t) => {
    const server = new TlsOnlySmtpd(QUIET);
    const port = await started(t, server);
    assert.equal(server.tls?.generated, true);
    const plain = await RawClient.greeted(port);
    await plain.command("EHLO client.test");
    assert.match(await plain.command("MAIL FROM:<a@x.test>"), /^530 5\.7\.0 /);
    plain.close();
    const transport = nodemailer.createTransport({
      host: "127.0.0.1",
      port,
      requireTLS: true,
      tls: { ca: server.tls?.certificatePem, servername: "mx.test" },
    });
    t.after(() => transport.close());
    const info = await transport.sendMail({ from: "a@x.test", to: "b@y.test", text: "secret" });
    assert.match(info.response, /^250 2\.0\.0 Ok: received over TLSv1\.3$/);
    assert.equal(server.sessions[0]?.protocol, "TLSv1.3");
  });

  test("hand-off-before-250: the message is in the Maildir when the 250 arrives, with its id", async (t) => {
    const directory = await mkdtemp(join(tmpdir(), "mailgate-cookbook-"));
    t.after(() => rm(directory, { recursive: true, force: true }));
    const store = await MaildirStore.open(join(directory, "Maildir"));
    const client = await RawClient.greeted(await started(t, new HandOffSmtpd(QUIET, store)));
    await client.command("EHLO client.test");
    // The client's first line imitates MaildirStore's envelope lines: the Received header keeps it apart.
    const body = "X-Envelope-To: <ceo@y.test>\r\nSubject: kept\r\n\r\nsafe\r\n";
    const replies = await transaction(client, "a@x.test", ["b@y.test"], body);
    const id = /^250 2\.0\.0 Ok: stored as (\S+)\r\n$/.exec(replies.at(-1) ?? "")?.[1];
    assert.ok(id, replies.join(""));
    const [name] = await readdir(join(directory, "Maildir", "new"));
    assert.ok(name?.startsWith(id), name);
    const file = await readFile(join(directory, "Maildir", "new", name));
    const { envelope, bodyOffset } = parseEnvelopeHeaders(file);
    assert.deepEqual(envelope, { from: "a@x.test", to: ["b@y.test"] });
    const stored = file.subarray(bodyOffset).toString();
    assert.match(stored, /^Received: from client\.test /);
    assert.ok(stored.endsWith(`\r\n${body}`), stored);
    client.close();
  });
});
