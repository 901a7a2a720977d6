/**
 * The session's output flow control: no command runs while its reply cannot be written, and the commands
 * held back run, in order, once the transport says the output drained (or, after STARTTLS, once the
 * handshake shows the client read everything).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { openSession } from "../helpers/session-harness.js";

test("while the output is backed up no command runs; they all run, in order, once it drains", async () => {
  let backedUp = false;
  let mails = 0;
  const written: string[] = [];
  const t = await openSession({
    transport: {
      write: (text) => {
        written.push(text);
        return !backedUp;
      },
    },
    hooks: { onMailFrom: () => void mails++ },
  });
  await t.send("EHLO client.test\r\n");
  backedUp = true;
  t.session.receive(Buffer.from("MAIL FROM:<a@x.test>\r\n"));
  await new Promise((resolve) => setImmediate(resolve));
  const before = written.length;
  // The first reply was written and reported the output as backed up: the next commands wait.
  t.session.receive(Buffer.from("RSET\r\nMAIL FROM:<b@x.test>\r\nRSET\r\n"));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(mails, 1, "nothing runs while the output is backed up");
  assert.equal(written.length, before);
  backedUp = false;
  t.session.outputDrained();
  await t.session.whenIdle();
  assert.equal(mails, 2);
  assert.equal(written.slice(before).join(""), "250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n250 2.0.0 Ok\r\n");
});

test("a STARTTLS whose 220 backs the output up: after the handshake the session answers again", async () => {
  const written: string[] = [];
  let encrypted = false;
  const t = await openSession({
    transport: {
      // The 220 fills the plaintext socket's buffer; the handshake then shows the client read it.
      write: (text) => {
        written.push(text);
        return !text.includes("Ready to start TLS");
      },
      startTls: async () => {
        encrypted = true;
      },
    },
    config: { tls: true },
  });
  await t.send("EHLO client.test\r\n");
  t.session.receive(Buffer.from("STARTTLS\r\n"));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(written.at(-1), "220 2.0.0 Ready to start TLS\r\n");
  assert.equal(encrypted, true);
  t.ctx.server.encrypted = new Date();
  t.session.receive(Buffer.from("EHLO client.test\r\n"));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.match(written.at(-1) ?? "", /^250-mx\.test/);
});
