import assert from "node:assert/strict";
import { test } from "node:test";
import { openSession } from "../helpers/session-harness.js";

test("a whole transaction, pipelined, is answered in one write", async () => {
  const t = await openSession();
  assert.equal(t.greeting, "220 mx.test ESMTP ready\r\n");
  assert.equal(
    await t.send("EHLO client.test\r\n"),
    "250-mx.test at your service\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-SIZE 1048576\r\n250-ENHANCEDSTATUSCODES\r\n250 HELP\r\n",
  );
  const before = t.written.length;
  assert.equal(
    await t.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"),
    '250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Enter message, ending with "." on a line by itself\r\n',
  );
  assert.equal(t.written.length, before + 1, "one write for the batch");
  assert.equal(
    await t.send("Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\n"),
    "250 2.0.0 Ok: message accepted\r\n",
  );
  assert.equal(t.messages.length, 1);
  assert.equal(t.messages[0]?.data.toString(), "Subject: x\r\n\r\n.dot\r\nbody\r\n");
  assert.equal(await t.send("QUIT\r\n"), "221 2.0.0 mx.test Service closing transmission channel\r\n");
  assert.equal(t.closed, true);
});

for (const eod of ["\n.\n", "\n.\r\n", "\r.\r", "\r\n.\n", "\r\n.\r"]) {
  test(`no smuggling: ${JSON.stringify(eod)} does not end DATA`, async () => {
    const t = await openSession();
    await t.send("EHLO c\r\n");
    await t.send("MAIL FROM:<a@x.test>\r\n", "RCPT TO:<b@y.test>\r\n", "DATA\r\n");
    const smuggled = `body${eod}MAIL FROM:<evil@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nhi\r\n.\r\n`;
    assert.equal(await t.send(smuggled), "250 2.0.0 Ok: message accepted\r\n");
    assert.equal(t.messages.length, 1);
    assert.match(t.messages[0]?.data.toString() ?? "", /MAIL FROM:<evil@x\.test>/);
  });
}
