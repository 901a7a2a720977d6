/**
 * Cookbook: a test of your own mail code against a real SMTP server on port 0 (as aiosmtpd's Controller
 * does in Python). start() binds a free port; server.ports[0] says which; the hooks record what arrived;
 * stop() ends it. Run it with `node --test test-on-port-0.js`; nodemailer stands for the code under test.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type SessionContext, SmtpServer } from "mailgate";
import nodemailer from "nodemailer";

test("our welcome mail reaches the SMTP server, addressed as it should be", async (t) => {
  const received: { to: string[]; data: string }[] = [];
  const server = new SmtpServer({
    ports: 0,
    hosts: "127.0.0.1",
    loggerSeverity: "warn",
    onMessageData(ctx: SessionContext) {
      received.push({ to: [...ctx.envelope.to], data: ctx.message.data.toString("utf8") });
    },
  });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));

  const transport = nodemailer.createTransport({ host: "127.0.0.1", port: server.ports[0], secure: false });
  await transport.sendMail({
    from: "app@example.org",
    to: "new.user@example.com",
    subject: "Welcome",
    text: "Hello!",
  });
  transport.close();

  assert.equal(received.length, 1);
  assert.deepEqual(received[0]?.to, ["new.user@example.com"]);
  assert.match(received[0]?.data ?? "", /^Subject: Welcome\r$/m);
});
