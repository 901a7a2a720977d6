/**
 * Issue 16 item 8 end to end: `mailgate serve` (in-process, createStoringServer with a real Maildir) and
 * real clients (swaks, a raw socket). A client that picks its EHLO argument, or a quoted recipient, must
 * not get a stored Received header that claims another origin, nor control bytes into the file.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, type TestContext, test } from "node:test";
import { parseServeFlags } from "../../src/cli/flags.js";
import { createStoringServer } from "../../src/cli/serve.js";
import type { ServerSettings } from "../../src/server/options.js";
import { MaildirStore, parseEnvelopeHeaders } from "../../src/store/maildir.js";
import { RawClient, runProgram } from "../helpers/clients.js";
import { needProgram } from "../helpers/programs.js";

interface Serving {
  port: number;
  maildir: string;
}

async function serving(t: TestContext, settings: Partial<ServerSettings> = {}): Promise<Serving> {
  const maildir = await mkdtemp(join(tmpdir(), "mailgate-received-"));
  const store = await MaildirStore.open(maildir);
  const server = createStoringServer(
    { hosts: "127.0.0.1", ports: "0", hostname: "mx.test", loggerSeverity: "fatal", ...settings },
    store,
  );
  await server.start();
  t.after(async () => {
    await server.stop({ gracefully: false });
    await store.close();
    await rm(maildir, { recursive: true, force: true });
  });
  return { port: server.ports[0] ?? 0, maildir };
}

/** The Received header of the only stored message, as stored (folded, with its final CRLF). */
async function storedReceived(maildir: string): Promise<string> {
  const names = await readdir(join(maildir, "new"));
  assert.equal(names.length, 1, `one stored message, found ${names.length}`);
  const file = await readFile(join(maildir, "new", names[0] as string));
  const text = file.subarray(parseEnvelopeHeaders(file).bodyOffset).toString("latin1");
  const end = text.search(/\r\n(?![\t ])/); // the end of the folded Received header
  assert.ok(text.startsWith("Received: ") && end > 0, text.slice(0, 200));
  return text.slice(0, end + 2);
}

/** The header as one line: folding undone (RFC 5322 2.2.3), white space between words one space. */
function unfold(header: string): string {
  return header
    .slice(0, -2)
    .replace(/\r\n(?=[ \t])/g, "")
    .replace(/[ \t]+/g, " ");
}

/** The stored header may name the client only as "from <one atom or literal> (<TCP-info>)". */
function assertNoForgedOrigin(received: string): void {
  assert.doesNotMatch(received, /198\.51\.100\.7\]/, "no bracketed forged address");
  assert.doesNotMatch(received, /\(mail\.bank\.example/, "no forged TCP-info comment");
  assert.doesNotMatch(received, /[^\t\r\n\x20-\x7e]/, "no control byte (nor any non-ASCII one)");
  assert.match(
    unfold(received),
    /^Received: from [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]+ \(\[127\.0\.0\.1\]\) by mx\.test \(mailgate\) with ESMTP id \w+( for <[^<>()"\s]+>)?; \w{3}, /,
    received,
  );
}

async function transaction(client: RawClient, rcpt: string): Promise<string> {
  assert.match(await client.command("MAIL FROM:<a@x.test>"), /^250 /);
  assert.match(await client.command(`RCPT TO:<${rcpt}>`), /^250 /);
  assert.match(await client.command("DATA"), /^354 /);
  return client.command("Subject: trace\r\n\r\nhello\r\n.");
}

describe("mailgate serve: the Received header cannot be forged through EHLO", () => {
  test("the EHLO of issue 16, with spaces, gets 501 and the client is not greeted", async (t) => {
    const { port } = await serving(t);
    const client = await RawClient.greeted(port);
    t.after(() => client.close());
    assert.equal(
      await client.command("EHLO mail.bank.example (mail.bank.example [198.51.100.7])"),
      "501 5.5.4 Error: the EHLO argument is one host name or address literal, without spaces\r\n",
    );
    assert.equal(await client.command("MAIL FROM:<a@x.test>"), "503 5.5.1 Error: send HELO/EHLO first\r\n");
  });

  test("ESC, BS and DEL in EHLO get 501", async (t) => {
    const { port } = await serving(t);
    const client = await RawClient.greeted(port);
    t.after(() => client.close());
    for (const control of ["\x1b]0;owned\x07", "\x08\x08\x08", "\x7f"]) {
      assert.equal(
        await client.command(`EHLO host${control}.example`),
        "501 5.5.4 Error: control character in the EHLO argument\r\n",
      );
    }
  });

  test("swaks with the same forgery written without spaces: accepted, but stored as one neutral word", async (t) => {
    const swaks = needProgram(t, "swaks");
    if (swaks === undefined) return;
    const { port, maildir } = await serving(t);
    const result = await runProgram(swaks, [
      "--server",
      "127.0.0.1",
      "--port",
      String(port),
      "--ehlo",
      "mail.bank.example(mail.bank.example[198.51.100.7])",
      "--from",
      "a@x.test",
      "--to",
      "b@y.test",
      "--header",
      "Subject: forged",
      "--body",
      "hello",
    ]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const received = await storedReceived(maildir);
    assertNoForgedOrigin(received);
    assert.ok(
      unfold(received).startsWith(
        "Received: from mail.bank.example?mail.bank.example?198.51.100.7?? ([127.0.0.1]) by mx.test ",
      ),
      received,
    );
  });

  test("a quoted recipient that imitates trace clauses is left out of the for clause", async (t) => {
    const { port, maildir } = await serving(t);
    const client = await RawClient.greeted(port);
    t.after(() => client.close());
    assert.match(await client.command("EHLO client.test"), /^250 /m);
    const reply = await transaction(
      client,
      '"x> (mail.bank.example [198.51.100.7]); Sun, 1 Jan 2006"@y.test',
    );
    assert.match(reply, /^250 2\.0\.0 Ok: stored as /);
    const received = await storedReceived(maildir);
    assert.ok(received.startsWith("Received: from client.test ([127.0.0.1])\r\n"), received);
    assertNoForgedOrigin(received);
  });

  test("--helo-strict: bad_host gets 501, mail.bank.example and [127.0.0.1] are accepted", async (t) => {
    assert.equal(parseServeFlags(["--helo-strict"]).settings.heloStrict, true);
    const { port, maildir } = await serving(t, parseServeFlags(["--helo-strict"]).settings);
    const client = await RawClient.greeted(port);
    t.after(() => client.close());
    assert.equal(
      await client.command("EHLO bad_host"),
      "501 5.5.4 Error: the EHLO argument must be a domain name or an address literal (RFC 5321 4.1.1.1)\r\n",
    );
    assert.match(await client.command("EHLO [127.0.0.1]"), /^250-mx\.test /);
    assert.match(await client.command("EHLO mail.bank.example"), /^250-mx\.test /);
    assert.match(await transaction(client, "b@y.test"), /^250 2\.0\.0 Ok: stored as /);
    const received = await storedReceived(maildir);
    assert.ok(received.startsWith("Received: from mail.bank.example ([127.0.0.1])\r\n"), received);
    assert.match(received, /\r\n\tfor <b@y\.test>;\r\n/);
  });

  test("by default an underscore host name is accepted and stored as it is", async (t) => {
    const { port, maildir } = await serving(t);
    const client = await RawClient.greeted(port);
    t.after(() => client.close());
    assert.match(await client.command("EHLO bad_host"), /^250-mx\.test /);
    assert.match(await transaction(client, "b@y.test"), /^250 2\.0\.0 Ok: stored as /);
    assert.ok((await storedReceived(maildir)).startsWith("Received: from bad_host ([127.0.0.1])\r\n"));
  });
});
