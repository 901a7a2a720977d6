/**
 * Real SMTP clients over loopback: nodemailer, Python's smtplib, curl, swaks and Postfix's smtp-source
 * deliver to an SmtpServer, and what reaches onMessageData is checked (envelope, and bytes where the
 * client lets us know exactly what it sends).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import nodemailer from "nodemailer";
import { runProgram, startRecordingServer } from "../helpers/clients.js";
import { needProgram } from "../helpers/programs.js";

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "mailgate-clients-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test("nodemailer delivers a text message with an attachment", async (t) => {
  const { port, messages } = await startRecordingServer(t);
  const transport = nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true });
  t.after(() => transport.close());
  const attachment = Buffer.from("attached bytes \u00e9\u00e8 \x00\x01\x02 end", "utf8");
  const info = await transport.sendMail({
    from: "Alice <alice@x.test>",
    to: "bob@y.test",
    cc: "carol@y.test",
    subject: "Hello from nodemailer",
    text: "The body text of the nodemailer message.\n.A line starting with a dot.\n",
    attachments: [{ filename: "data.bin", content: attachment }],
  });
  assert.match(info.response, /^250 /);
  assert.equal(messages.length, 1);
  const [message] = messages;
  assert.equal(message?.envelope.from, "alice@x.test");
  assert.deepEqual(message?.envelope.to, ["bob@y.test", "carol@y.test"]);
  const data = message?.data.toString("latin1") ?? "";
  assert.match(data, /^Subject: Hello from nodemailer\r$/m);
  assert.ok(data.includes("The body text of the nodemailer message."), data);
  assert.ok(data.includes("\r\n.A line starting with a dot."), "dot-stuffing undone");
  assert.ok(!/[^\r]\n/.test(data), "only CRLF line ends");
  assert.ok(data.includes(attachment.toString("base64")), "the attachment, base64-encoded");
  assert.ok(data.endsWith("\r\n"));
});

const SMTPLIB_SCRIPT = `
import smtplib, sys
port, sender, recipients, options = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(","), sys.argv[4:]
message = sys.stdin.buffer.read()
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=20) as smtp:
    refused = smtp.sendmail(sender, recipients, message, mail_options=options)
    assert not refused, refused
print("sent", len(message))
`;

async function smtplibSend(
  t: TestContext,
  port: number,
  from: string,
  to: string[],
  message: Buffer,
  options: string[] = [],
): Promise<boolean> {
  const python = needProgram(t, "python3");
  if (python === undefined) return false;
  const result = await runProgram(
    python,
    ["-c", SMTPLIB_SCRIPT, String(port), from, to.join(","), ...options],
    {
      input: message,
    },
  );
  assert.equal(result.code, 0, `python3 failed:\n${result.stdout}${result.stderr}`);
  assert.equal(result.stdout.trim(), `sent ${message.length}`);
  return true;
}

test("Python smtplib: two recipients, bytes intact", async (t) => {
  const { port, messages } = await startRecordingServer(t);
  const message = Buffer.from(
    "From: a@x.test\r\nTo: b@y.test, c@y.test\r\nSubject: smtplib\r\n\r\nline one\r\n.dotted line\r\n..two dots\r\n\r\nlast line\r\n",
  );
  if (!(await smtplibSend(t, port, "a@x.test", ["b@y.test", "c@y.test"], message))) return;
  assert.equal(messages.length, 1);
  assert.equal(messages[0]?.envelope.from, "a@x.test");
  assert.deepEqual(messages[0]?.envelope.to, ["b@y.test", "c@y.test"]);
  assert.deepEqual(messages[0]?.data, message);
  assert.equal(messages[0]?.ctx.server.helo, "client.test");
});

test("Python smtplib: SMTPUTF8 and 8BITMIME, UTF-8 addresses and an 8-bit body arrive intact", async (t) => {
  const { port, messages } = await startRecordingServer(t);
  const from = "jos\u00e9@exp\u00e9diteur.test";
  const to = "\u7528\u6237@\u4f8b\u5b50.test";
  const message = Buffer.from(
    `From: ${from}\r\nTo: ${to}\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nCaf\u00e9 cr\u00e8me, \u65e5\u672c\u8a9e, \u{1f4e7}.\r\n.\u00e9 dotted\r\n`,
    "utf8",
  );
  if (!(await smtplibSend(t, port, from, [to], message, ["SMTPUTF8", "BODY=8BITMIME"]))) return;
  assert.equal(messages.length, 1);
  const envelope = messages[0]?.envelope;
  assert.equal(envelope?.from, from);
  assert.deepEqual(envelope?.to, [to]);
  assert.equal(envelope?.encodingUtf8, "utf8");
  assert.equal(envelope?.encodingBody, "8bitmime");
  assert.equal(envelope?.declaredSize, message.length, "smtplib declares SIZE=");
  assert.deepEqual(messages[0]?.data, message);
});

test("curl --upload-file: the file's bytes arrive exactly", async (t) => {
  const curl = needProgram(t, "curl");
  if (curl === undefined) return;
  const { port, messages } = await startRecordingServer(t);
  const dir = await tempDir(t);
  const file = join(dir, "message.eml");
  const content = Buffer.from(
    "From: a@x.test\r\nTo: b@y.test\r\nSubject: curl\r\n\r\nHello from curl.\r\n.leading dot\r\n.\r\n\r\nbye\r\n",
  );
  await writeFile(file, content);
  const result = await runProgram(curl, [
    "-sS",
    `smtp://127.0.0.1:${port}`,
    "--mail-from",
    "a@x.test",
    "--mail-rcpt",
    "b@y.test",
    "--upload-file",
    file,
  ]);
  assert.equal(result.code, 0, `curl failed: ${result.stderr}`);
  assert.equal(messages.length, 1);
  assert.equal(messages[0]?.envelope.from, "a@x.test");
  assert.deepEqual(messages[0]?.envelope.to, ["b@y.test"]);
  assert.deepEqual(messages[0]?.data, content);
});

for (const pipeline of [false, true]) {
  test(`swaks${pipeline ? " --pipeline" : ""}: --data from a file and --body both arrive`, async (t) => {
    const swaks = needProgram(t, "swaks");
    if (swaks === undefined) return;
    const { port, messages } = await startRecordingServer(t);
    const dir = await tempDir(t);
    const file = join(dir, "message.eml");
    // swaks turns LF into CRLF, stuffs leading dots, drops a final "." line and then ends DATA itself.
    await writeFile(
      file,
      "From: a@x.test\nTo: b@y.test\nSubject: swaks file\n\nswaks file body\n.leading dot\n.\n",
    );
    const common = ["--server", "127.0.0.1", "--port", String(port), "--from", "a@x.test"];
    if (pipeline) common.push("--pipeline");
    const first = await runProgram(swaks, [...common, "--to", "b@y.test", "--data", `@${file}`]);
    assert.equal(first.code, 0, `swaks failed:\n${first.stdout}${first.stderr}`);
    const second = await runProgram(swaks, [
      ...common,
      "--to",
      "c@y.test,d@y.test",
      "--header",
      "Subject: swaks body",
      "--body",
      "swaks body text",
    ]);
    assert.equal(second.code, 0, `swaks failed:\n${second.stdout}${second.stderr}`);
    if (pipeline) assert.match(first.stdout, /PIPELINING/);

    assert.equal(messages.length, 2);
    assert.equal(messages[0]?.envelope.from, "a@x.test");
    assert.deepEqual(messages[0]?.envelope.to, ["b@y.test"]);
    assert.equal(
      messages[0]?.data.toString(),
      "From: a@x.test\r\nTo: b@y.test\r\nSubject: swaks file\r\n\r\nswaks file body\r\n.leading dot\r\n",
    );
    assert.deepEqual(messages[1]?.envelope.to, ["c@y.test", "d@y.test"]);
    const secondData = messages[1]?.data.toString() ?? "";
    assert.match(secondData, /^Subject: swaks body\r$/m);
    assert.match(secondData, /\r\n\r\nswaks body text\r\n/);
  });
}

test("Postfix smtp-source: 20 messages over 4 parallel sessions all arrive", async (t) => {
  const smtpSource = needProgram(t, "smtp-source", "postfix");
  if (smtpSource === undefined) return;
  const { port, messages, waitForMessages } = await startRecordingServer(t);
  const result = await runProgram(smtpSource, [
    "-c",
    "-m",
    "20",
    "-s",
    "4",
    "-l",
    "2048",
    "-f",
    "a@x.test",
    "-t",
    "b@y.test",
    `127.0.0.1:${port}`,
  ]);
  assert.equal(result.code, 0, `smtp-source failed:\n${result.stdout}${result.stderr}`);
  await waitForMessages(20);
  assert.equal(messages.length, 20);
  for (const message of messages) {
    assert.equal(message.envelope.from, "a@x.test");
    assert.deepEqual(message.envelope.to, ["b@y.test"]);
    assert.ok(message.data.length >= 2048, `message of ${message.data.length} bytes`);
  }
});
