/**
 * How a session answers errors (src/protocol/reply-queue.ts), without sockets: an SmtpError's own reply, a
 * hook's other failure as 500 (451 during a message) without its text, smtp-server's responseCode, the
 * count of bad commands that ends a session, and what ctx.server records.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SmtpError } from "../../src/protocol/errors.js";
import { observerOf } from "../helpers/refusal.js";
import { openSession } from "../helpers/session-harness.js";

const TOO_MANY = "421 4.7.0 mx.test Error: too many errors, closing connection\r\n";

test("bad commands (500, 501, 502, 503, 504, 555) are counted; one more than maxBadCommands ends the session", async () => {
  const t = await openSession({ config: { maxBadCommands: 3 } });
  await t.send("EHLO client.example\r\n");
  assert.match(await t.send("FOO\r\n"), /^500 /);
  assert.match(await t.send("MAIL FROM:<a@b.example> X=1\r\n"), /^555 /);
  assert.match(await t.send("RCPT TO:<c@d.example>\r\n"), /^503 /);
  assert.equal(t.closed, false, "three are allowed");
  assert.equal(await t.send("BAR\r\n"), `500 5.5.2 Syntax error, command unrecognised\r\n${TOO_MANY}`);
  assert.equal(t.closed, true);
});

test("a hook's refusal with another code (550) is not a bad command", async () => {
  const t = await openSession({
    config: { maxBadCommands: 1 },
    hooks: {
      onRcptTo: () => {
        throw new SmtpError(550, "No such user", "5.1.1");
      },
    },
  });
  await t.send("EHLO client.example\r\n");
  await t.send("MAIL FROM:<a@b.example>\r\n");
  for (let i = 0; i < 3; i++)
    assert.equal(await t.send("RCPT TO:<c@d.example>\r\n"), "550 5.1.1 No such user\r\n");
  assert.equal(t.closed, false);
  assert.equal(t.ctx.server.exceptions, 3);
});

test("recipients refused with a 5xx are counted; one more than maxRecipientRefusals ends the session (address guessing)", async () => {
  const t = await openSession({
    config: { maxRecipientRefusals: 3 },
    hooks: {
      onRcptTo: (_ctx, address) => {
        if (address === "busy@d.example") throw new SmtpError(450, "Try again later", "4.2.0");
        if (address !== "known@d.example") throw new SmtpError(550, "No such user", "5.1.1");
      },
    },
  });
  await t.send("EHLO client.example\r\n");
  await t.send("MAIL FROM:<a@b.example>\r\n");
  const guess = (n: number) => t.send(`RCPT TO:<guess${n}@d.example>\r\n`);
  for (let i = 0; i < 3; i++) assert.equal(await guess(i), "550 5.1.1 No such user\r\n");
  // A temporary refusal is not a guess answered.
  assert.match(await t.send("RCPT TO:<busy@d.example>\r\n"), /^450 /);
  // A message delivered starts the count again: the client is not guessing.
  assert.match(await t.send("RCPT TO:<known@d.example>\r\n"), /^250 /);
  assert.match(await t.send("DATA\r\n"), /^354 /);
  assert.match(await t.send("Subject: hi\r\n\r\nbody\r\n.\r\n"), /^250 /);
  await t.send("MAIL FROM:<a@b.example>\r\n");
  for (let i = 3; i < 6; i++) assert.equal(await guess(i), "550 5.1.1 No such user\r\n");
  assert.equal(t.closed, false, "three since the last message are allowed");
  assert.equal(await guess(6), `550 5.1.1 No such user\r\n${TOO_MANY}`);
  assert.equal(t.closed, true);
});

test("a hook that throws an Error: 500 for a command, 451 for a message, its text only logged", async () => {
  const failures: unknown[] = [];
  const boom = new Error("database password is hunter2");
  const t = await openSession({
    hooks: {
      onMailFrom: () => {
        throw boom;
      },
      observer: observerOf({ hookFailed: (_ctx, error) => failures.push(error) }),
    },
  });
  await t.send("EHLO client.example\r\n");
  assert.equal(
    await t.send("MAIL FROM:<a@b.example>\r\n"),
    "451 4.3.0 Requested action aborted: local error in processing\r\n",
  );
  assert.deepEqual(failures, [boom]);
  assert.ok(t.logs.includes("error: hook failed: Error: database password is hunter2"), t.logs.join("\n"));
  assert.ok(!t.written.join("").includes("hunter2"));
  const data = await openSession({
    hooks: {
      onMessageData: () => {
        throw new Error("store down");
      },
    },
  });
  await data.send("EHLO client.example\r\n");
  await data.send("MAIL FROM:<a@b.example>\r\n");
  await data.send("RCPT TO:<c@d.example>\r\n");
  await data.send("DATA\r\n");
  assert.equal(
    await data.send("Subject: x\r\n\r\nbody\r\n.\r\n"),
    "451 4.3.0 Requested action aborted: local error in processing\r\n",
  );
});

test("an unknown verb whose hook throws: 500; the hook's error is logged", async () => {
  const t = await openSession({
    hooks: {
      onProcessLineUnknown: () => {
        throw new Error("parser broke");
      },
    },
  });
  assert.equal(await t.send("XYZZY\r\n"), "500 5.5.2 Syntax error, command unrecognised\r\n");
  assert.ok(t.logs.includes("error: hook failed: Error: parser broke"), t.logs.join("\n"));
});

test("smtp-server's responseCode: that standard reply, the error's text logged at info", async () => {
  const t = await openSession({
    hooks: {
      onRcptTo: () => {
        throw Object.assign(new Error("quota of bob exceeded"), { responseCode: 452 });
      },
    },
  });
  await t.send("EHLO client.example\r\n");
  await t.send("MAIL FROM:<a@b.example>\r\n");
  assert.equal(
    await t.send("RCPT TO:<c@d.example>\r\n"),
    "452 4.3.1 Requested action not taken: insufficient system storage\r\n",
  );
  assert.ok(t.logs.includes("info: hook failed: Error: quota of bob exceeded"), t.logs.join("\n"));
  assert.ok(
    t.logs.includes("debug: 452 asked by a hook's Error (responseCode): quota of bob exceeded"),
    t.logs.join("\n"),
  );
});

test("ctx.server counts every error and keeps the last 100, as Errors", async () => {
  const t = await openSession({ config: { maxBadCommands: 1000 } });
  for (let i = 0; i < 105; i++) await t.send(`BAD${i}\r\n`);
  const { server } = t.ctx;
  assert.equal(server.exceptions, 105);
  assert.equal(server.errors.length, 100);
  assert.ok(server.errors.every((error) => error instanceof SmtpError));
  assert.equal((server.errors[0] as SmtpError).code, 500);
});

test("a 421 from a hook closes the session at once; a message's answer that closes does too", async () => {
  const t = await openSession({
    hooks: {
      onMessageData: () => {
        throw new SmtpError(421, "Try later", "4.3.0");
      },
    },
  });
  await t.send("EHLO client.example\r\n");
  await t.send("MAIL FROM:<a@b.example>\r\n");
  await t.send("RCPT TO:<c@d.example>\r\n");
  await t.send("DATA\r\n");
  assert.equal(await t.send("Subject: x\r\n\r\nbody\r\n.\r\nNOOP\r\n"), "421 4.3.0 Try later\r\n");
  assert.equal(t.closed, true);
});

test("accepted and refused messages are told to the observer, once per reply (per recipient in LMTP)", async () => {
  const events: string[] = [];
  const observer = observerOf({
    messageAccepted: () => events.push("accepted"),
    messageRefused: () => events.push("refused"),
  });
  const t = await openSession({
    config: { lmtp: true },
    hooks: { observer, onMessageData: () => ["ok", new SmtpError(452)] },
  });
  await t.send("LHLO client.example\r\n");
  await t.send("MAIL FROM:<a@b.example>\r\n");
  await t.send("RCPT TO:<c@d.example>\r\n");
  await t.send("RCPT TO:<e@f.example>\r\n");
  await t.send("DATA\r\n");
  assert.equal(
    await t.send("Subject: x\r\n\r\nbody\r\n.\r\n"),
    "250 2.0.0 ok\r\n452 4.3.1 Requested action not taken: insufficient system storage\r\n",
  );
  assert.deepEqual(events, ["accepted", "refused"]);
});
