/**
 * Habits Node and Python users bring from smtp-server and aiosmtpd: honoured where their meaning is
 * clear, refused where honouring them silently would be wrong (issue 20).
 */
import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { test } from "node:test";
import { SmtpServer } from "../../src/server/server.js";
import { RawClient, runProgram, startRecordingServer } from "../helpers/clients.js";

async function transaction(port: number, rcpt = "b@mx.test"): Promise<string[]> {
  const client = await RawClient.greeted(port);
  try {
    await client.command("EHLO client.test");
    const replies = [
      await client.command("MAIL FROM:<a@client.test>"),
      await client.command(`RCPT TO:<${rcpt}>`),
    ];
    if (!replies[1]?.startsWith("250")) return replies;
    replies.push(await client.command("DATA"));
    replies.push(await client.command("Subject: x\r\n\r\nhi\r\n."));
    return replies;
  } finally {
    client.close();
  }
}

test("smtp-server's responseCode: the code is honoured with its standard text; the error's message is never sent", async (t) => {
  const logged: string[] = [];
  const { port } = await startRecordingServer(t, {
    onRcptTo(_ctx, address) {
      if (address.startsWith("nobody@")) {
        throw Object.assign(new Error("no such user in table users (db 10.0.0.5)"), { responseCode: 550 });
      }
    },
    onMessageData() {
      throw Object.assign(new Error("quota service at 10.0.0.9 timed out"), { responseCode: 452 });
    },
    onLogging(_ctx, _severity, message) {
      logged.push(message);
    },
  });
  const refused = await transaction(port, "nobody@mx.test");
  assert.match(refused[1] ?? "", /^550 5\.[0-9.]+ /);
  assert.doesNotMatch(refused.join(""), /table users|10\.0\.0/);
  const deferred = await transaction(port);
  assert.match(deferred.at(-1) ?? "", /^452 4\.[0-9.]+ /);
  assert.doesNotMatch(deferred.join(""), /quota|10\.0\.0/);
  assert.ok(
    logged.some((line) => line.includes("no such user in table users")),
    "logged, not sent",
  );
});

test("aiosmtpd's handle_MAIL/handle_RCPT habit: a returned '250 OK' is a reply, never the new address", async (t) => {
  const { port, messages } = await startRecordingServer(t, {
    onMailFrom: () => "250 OK",
    onRcptTo: (_ctx, address) => (address.startsWith("nobody@") ? "550 5.1.1 No such user here" : "250 OK"),
  });
  const refused = await transaction(port, "nobody@mx.test");
  assert.deepEqual(refused, ["250 2.1.0 OK\r\n", "550 5.1.1 No such user here\r\n"]);
  const accepted = await transaction(port);
  assert.equal(accepted[1], "250 2.1.5 OK\r\n");
  assert.match(accepted.at(-1) ?? "", /^250 /);
  assert.deepEqual(messages[0]?.envelope.from, "a@client.test");
  assert.deepEqual(messages[0]?.envelope.to, ["b@mx.test"]);
});

test("aiosmtpd's habit: a hook returning a whole reply gets that reply, not 250 with the code repeated", async (t) => {
  const answers = ["250 Message accepted for delivery", "550 5.7.1 Message refused as spam", "451 Try later"];
  let next = 0;
  const { port } = await startRecordingServer(t, { onMessageData: () => answers[next++] });
  assert.equal((await transaction(port)).at(-1), "250 2.0.0 Message accepted for delivery\r\n");
  assert.equal((await transaction(port)).at(-1), "550 5.7.1 Message refused as spam\r\n");
  assert.match((await transaction(port)).at(-1) ?? "", /^451 4\.[0-9.]+ Try later\r\n$/);
});

test("smtp-server's option names are refused with mailgate's name for the same thing", () => {
  assert.throws(
    () => new SmtpServer({ size: 1000 } as never),
    /^TypeError: Unknown option size \(smtp-server's\); mailgate's is maxMessageSize /,
  );
  assert.throws(
    () => new SmtpServer({ onData() {} } as never),
    /mailgate's is onMessageStream\(ctx, stream\)/,
  );
  assert.throws(() => new SmtpServer({ authOptional: true } as never), /authMode: "optional"/);
});

test("socketMode given as a decimal number that reads as octal is refused with the octal spelling", () => {
  assert.throws(() => new SmtpServer({ socketMode: 666 }), /socketMode: 666 is decimal .*0o666/);
  assert.equal(new SmtpServer({ socketMode: 0o666 }).settings.socketMode, 0o666);
  assert.equal(new SmtpServer({ socketMode: "666" as unknown as number }).settings.socketMode, 0o666);
});

test("the build keeps the mailgate command executable (npx mailgate after npm run build)", async () => {
  const main = new URL("../../src/cli/main.js", import.meta.url);
  assert.equal((await stat(main)).mode & 0o111, 0o111);
});

test("the library never writes to its program's stdout unasked: the default log lines go to stderr", async () => {
  const index = new URL("../../src/index.js", import.meta.url).href;
  const program = `
    const { SmtpServer } = await import(${JSON.stringify(index)});
    const server = new SmtpServer({ ports: 0 });
    await server.start();
    await server.stop();
  `;
  const result = await runProgram(process.execPath, ["--input-type=module", "-e", program]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "");
  assert.match(result.stderr, /\[INFO\] Listening on 127\.0\.0\.1:[1-9]/);
});
