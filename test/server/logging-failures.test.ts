/**
 * A logging hook or logger that throws must never break a session nor crash the process: the server
 * reports the first failure as a process warning and serves on. (Before this was handled, an onLogging
 * that threw on the connect event rejected a promise nobody awaited: Node ends the process for that.)
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import type { SmtpServerOptions } from "../../src/server/server.js";
import { RawClient, startRecordingServer } from "../helpers/clients.js";
import { watchProcess } from "../helpers/process-watch.js";

/** Two sessions, each with a failing hook (logged as an error) and a delivered message. */
async function serveThroughFailingLogs(t: TestContext, options: SmtpServerOptions): Promise<void> {
  const watched = watchProcess(t);
  const { port, waitForMessages } = await startRecordingServer(t, {
    loggerSeverity: "debug",
    ...options,
    onRcptTo(_ctx, address) {
      if (address === "broken@y.test") throw new Error("a bug in the hook");
    },
  });
  for (let session = 1; session <= 2; session++) {
    const client = await RawClient.greeted(port);
    assert.match(await client.command("EHLO client.test"), /^250 /m);
    assert.match(await client.command("MAIL FROM:<a@x.test>"), /^250 /);
    // A hook failure is answered (and logged, which throws again) without ending the session.
    assert.match(await client.command("RCPT TO:<broken@y.test>"), /^451 /);
    assert.match(await client.command("RCPT TO:<b@y.test>"), /^250 /);
    assert.match(await client.command("DATA"), /^354 /);
    assert.match(await client.command(`Subject: ${session}\r\n\r\nbody\r\n.`), /^250 /);
    assert.match(await client.command("QUIT"), /^221 /);
    await client.closed;
  }
  assert.equal((await waitForMessages(2)).length, 2);
  await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
  assert.deepEqual(watched.rejections, [], "no unhandled rejection");
  assert.equal(watched.warnings.length, 1, `one warning, not one per event: ${watched.warnings.join(" | ")}`);
  assert.match(watched.warnings[0] ?? "", /onLogging threw \(logging is broken\)/);
}

test("an onLogging hook that throws on every event: sessions are served, one process warning", async (t) => {
  await serveThroughFailingLogs(t, {
    onLogging() {
      throw new Error("logging is broken");
    },
  });
});

test("a logger whose methods throw, under the default onLogging: the same", async (t) => {
  const broken = () => {
    throw new Error("logging is broken");
  };
  await serveThroughFailingLogs(t, { logger: { debug: broken, info: broken, warn: broken, error: broken } });
});
