/** The severity at which a hook's error is logged, as docs/hooks.md ("Errors and replies") states it. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SmtpError } from "../../src/index.js";
import { RawClient, startRecordingServer } from "../helpers/clients.js";

test("an SmtpError's message is logged at debug, a responseCode error's at info, any other error at error", async (t) => {
  const logged: { severity: string; message: string }[] = [];
  const refusals: Record<string, () => never> = {
    "smtp-error@mx.test": () => {
      throw SmtpError.code(550, "refused: smtp-error marker");
    },
    "response-code@mx.test": () => {
      throw Object.assign(new Error("refused: response-code marker"), { responseCode: 550 });
    },
    "plain-error@mx.test": () => {
      throw new Error("refused: plain-error marker");
    },
  };
  const { port } = await startRecordingServer(t, {
    onRcptTo: (_ctx, address) => refusals[address]?.(),
    onLogging: (_ctx, severity, message) => void logged.push({ severity, message }),
  });
  const client = await RawClient.greeted(port);
  t.after(() => client.close());
  await client.command("EHLO client.test");
  await client.command("MAIL FROM:<a@client.test>");
  assert.match(await client.command("RCPT TO:<smtp-error@mx.test>"), /^550 /);
  assert.match(await client.command("RCPT TO:<response-code@mx.test>"), /^550 /);
  assert.match(await client.command("RCPT TO:<plain-error@mx.test>"), /^451 /);
  const severityOf = (marker: string) =>
    logged.filter((entry) => entry.message.includes(`${marker} marker`)).map((entry) => entry.severity);
  assert.deepEqual(severityOf("smtp-error"), ["debug"]);
  assert.ok(severityOf("response-code").includes("info"), JSON.stringify(logged));
  assert.deepEqual(severityOf("plain-error"), ["error"]);
});
