/**
 * A session closed while a hook was still running (a timeout, a shutdown, the client gone) stays closed:
 * when the hook settles, nothing of the interrupted command goes on. Found by the session fuzz target
 * (fuzz/corpus/session/regression-*).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SmtpError } from "../../src/protocol/errors.js";
import { openSession } from "../helpers/session-harness.js";

/** A hook that waits until the test lets it go. */
function held(): { wait: () => Promise<void>; release: () => void } {
  let release = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  return { wait: () => gate, release };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

for (const verb of ["DATA", "BDAT 4 LAST"]) {
  test(`${verb}: a timeout while the data-start hook runs opens no message stream`, async () => {
    const start = held();
    let streams = 0;
    const t = await openSession({
      config: { chunking: true },
      hooks: {
        onMessageDataStart: () => start.wait(),
        onMessageStream: async (_ctx, stream) => {
          streams++;
          for await (const _ of stream);
        },
      },
    });
    await t.send("EHLO client.test\r\n", "MAIL FROM:<a@x.test>\r\n", "RCPT TO:<b@x.test>\r\n");
    t.session.receive(Buffer.from(`${verb}\r\n`));
    t.session.timeout();
    const written = t.written.length;
    start.release();
    await settle();
    assert.equal(streams, 0, "onMessageStream was called for a closed session");
    assert.equal(t.session.isClosed, true);
    t.session.receive(Buffer.from("abcdRSET\r\n"));
    await settle();
    assert.equal(t.written.length, written, "the closed session wrote again");
  });
}

test("AUTH: a timeout while the address limit is asked leaves the session closed", async () => {
  const check = held();
  const t = await openSession({
    config: {
      auth: {
        mode: "optional",
        mechanisms: ["PLAIN", "LOGIN"],
        overPlaintext: true,
        maxFailures: 5,
        addressLimit: {
          isBlocked: async () => {
            await check.wait();
            return false;
          },
          record: () => false,
          exclusive: (_ctx, run) => run(),
        },
      },
    },
    hooks: { onAuth: () => Promise.reject(SmtpError.code(535)) },
  });
  await t.send("EHLO client.test\r\n");
  t.session.receive(Buffer.from("AUTH LOGIN\r\n"));
  t.session.timeout();
  const written = t.written.length;
  check.release();
  await settle();
  assert.equal(t.session.isClosed, true, "the session opened again");
  t.session.receive(Buffer.from("dXNlcg==\r\nNOOP\r\n"));
  await settle();
  assert.equal(t.written.length, written, "the closed session wrote again");
});

test("a timeout while the message hook runs: no 250 after the 421, and the session stays closed", async () => {
  const hook = held();
  const t = await openSession({ hooks: { onMessageData: () => hook.wait() } });
  await t.send("EHLO client.test\r\n", "MAIL FROM:<a@x.test>\r\n", "RCPT TO:<b@x.test>\r\n", "DATA\r\n");
  t.session.receive(Buffer.from("Subject: x\r\n\r\nbody\r\n.\r\n"));
  t.session.timeout();
  hook.release();
  await settle();
  assert.equal(t.session.isClosed, true, "the session opened again");
  t.session.receive(Buffer.from("NOOP\r\n"));
  await settle();
  assert.equal(t.written.at(-1), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
});

test("a shutdown right after DATA, before the stream consumer was started: it is never started", async () => {
  let streams = 0;
  const t = await openSession({
    hooks: {
      onMessageStream: async (_ctx, stream) => {
        streams++;
        for await (const _ of stream);
      },
    },
  });
  await t.send("EHLO client.test\r\n", "MAIL FROM:<a@x.test>\r\n", "RCPT TO:<b@x.test>\r\n");
  t.session.receive(Buffer.from("DATA\r\n"));
  t.session.shutdownNow();
  await settle();
  assert.equal(streams, 0, "onMessageStream was called for a closed session");
});

test("a timeout while the stream consumer finishes a message: onMessageData is not started afterwards", async () => {
  const consumer = held();
  let dataHooks = 0;
  const t = await openSession({
    hooks: {
      onMessageStream: async (_ctx, stream) => {
        for await (const _ of stream);
        await consumer.wait();
      },
      onMessageData: () => {
        dataHooks++;
      },
    },
  });
  await t.send("EHLO client.test\r\n", "MAIL FROM:<a@x.test>\r\n", "RCPT TO:<b@x.test>\r\n", "DATA\r\n");
  t.session.receive(Buffer.from("Subject: x\r\n\r\nbody\r\n.\r\n"));
  await settle();
  t.session.timeout();
  consumer.release();
  await settle();
  assert.equal(dataHooks, 0, "onMessageData ran after the session closed");
  assert.equal(t.written.at(-1), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
});
