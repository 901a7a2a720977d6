/**
 * Protocol details where mailgate differed from Postfix 3.7 and the RFCs (found by sending the same 358
 * dialogues to both): trailing white space, QUIT in a pipelined batch, repeated NOTIFY values, and a BDAT
 * whose size cannot be read, which must end the session because the stream is no longer framed.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { openSession } from "../helpers/session-harness.js";

const BYE = "221 2.0.0 mx.test Service closing transmission channel\r\n";

async function greeted(config: Parameters<typeof openSession>[0] = {}) {
  const t = await openSession(config);
  await t.send("EHLO client.test\r\n");
  return t;
}

describe("trailing white space before CRLF (RFC 5321 4.1.1: tolerated)", () => {
  test("a trailing tab is tolerated as trailing spaces are", async () => {
    const t = await greeted();
    assert.equal(await t.send("NOOP\t\r\n"), "250 2.0.0 Ok\r\n");
    assert.equal(await t.send("MAIL FROM:<a@b.example>\t\r\n"), "250 2.1.0 Ok\r\n");
    assert.equal(await t.send("RCPT TO:<c@d.example> \t \r\n"), "250 2.1.5 Ok\r\n");
    assert.equal(await t.send("DATA\t\r\n"), '354 Enter message, ending with "." on a line by itself\r\n');
    assert.equal(await t.send("Subject: x\r\n\r\nhi\r\n.\r\n"), "250 2.0.0 Ok: message accepted\r\n");
    assert.equal(t.messages.length, 1);
    assert.equal(await t.send("QUIT\t\r\n"), BYE);
  });
});

describe("QUIT (RFC 5321 4.1.1.10: the server MUST answer 221)", () => {
  test("QUIT followed by more pipelined input gets 221, and nothing after it runs", async () => {
    let mails = 0;
    const t = await greeted({ hooks: { onMailFrom: () => void mails++ } });
    assert.equal(await t.send("QUIT\r\nMAIL FROM:<a@b.example>\r\nNOOP\r\n"), BYE);
    assert.equal(t.closed, true);
    assert.equal(mails, 0);
    assert.equal(await t.send("NOOP\r\n"), "");
  });

  test("a pipelined transaction ending in QUIT is answered in full", async () => {
    const t = await greeted();
    assert.equal(
      await t.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRSET\r\nQUIT\r\nRSET\r\n"),
      `250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n${BYE}`,
    );
    assert.equal(t.closed, true);
  });
});

describe("NOTIFY (RFC 3461 4.1)", () => {
  test("a repeated value is allowed; only NEVER must stand alone", async () => {
    const t = await greeted({ config: { dsn: true } });
    assert.equal(
      await t.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example> NOTIFY=SUCCESS,SUCCESS\r\n"),
      "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n",
    );
    assert.deepEqual(t.ctx.envelope.rcptDsn[0]?.notify, ["SUCCESS"]);
    const refused = "501 5.5.4 Error: NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY\r\n";
    assert.equal(await t.send("RCPT TO:<e@d.example> NOTIFY=NEVER,SUCCESS\r\n"), refused);
    assert.equal(await t.send("RCPT TO:<e@d.example> NOTIFY=NEVER,NEVER\r\n"), refused);
    assert.equal(await t.send("RCPT TO:<e@d.example> NOTIFY=SUCCESS,BOGUS\r\n"), refused);
    assert.equal(await t.send("RCPT TO:<e@d.example> NOTIFY=DELAY,failure,Delay\r\n"), "250 2.1.5 Ok\r\n");
    assert.deepEqual(t.ctx.envelope.rcptDsn[1]?.notify, ["DELAY", "FAILURE"]);
  });
});

describe("a BDAT whose size cannot be read (RFC 3030 2)", () => {
  const unreadable = [
    "BDAT",
    "BDAT abc",
    "BDAT -5 LAST",
    "BDAT +59 LAST",
    "BDAT 5 LAST junk",
    `BDAT ${"9".repeat(20)}`,
    "BDAT\t59",
    "BDAT\t59 LAST",
    "BDAT\v59",
    "BDAT\f59",
    "BDAT 59\u00a0",
    "BDAT 59 LAST\u2028",
    "BDAT 59\u0000",
  ];
  for (const command of unreadable) {
    // Non-ASCII escaped in the title: a raw U+2028 ends the line for TAP readers (Stryker's tap-parser).
    const shown = JSON.stringify(command).replace(
      /[^ -~]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
    test(`${shown}: 521 and the session ends, so the chunk's octets never run as commands`, async () => {
      let mails = 0;
      const t = await greeted({ config: { chunking: true }, hooks: { onMailFrom: () => void mails++ } });
      const smuggled = "RSET\r\nMAIL FROM:<x@evil.example>\r\nRCPT TO:<y@d.example>\r\n";
      assert.equal(await t.send(`${command}\r\n${smuggled}`), "521 5.5.4 Syntax: BDAT size [LAST]\r\n");
      assert.equal(t.closed, true);
      assert.equal(mails, 0);
    });
  }

  test("a readable BDAT refused for another reason still has its octets read and dropped", async () => {
    const t = await greeted({ config: { chunking: true } });
    assert.equal(
      await t.send("BDAT 6\r\nNOOP\r\nNOOP\r\n"),
      "503 5.5.1 Error: need RCPT command\r\n250 2.0.0 Ok\r\n",
    );
    assert.equal(t.closed, false);
  });
});

describe("SMTPUTF8 addresses (RFC 6531) carry no control, separator or bidi character", () => {
  test("C1 controls, U+2028/U+2029 and bidi overrides are refused; other non-ASCII is accepted", async () => {
    const t = await greeted();
    const refusedFrom = "501 5.1.7 Syntax error: control or separator character in the address\r\n";
    const refusedTo = "501 5.1.3 Syntax error: control or separator character in the address\r\n";
    const mail = (local: string) => Buffer.from(`MAIL FROM:<"${local}"@ex.example> SMTPUTF8\r\n`);
    assert.equal(await t.send(mail("x\u2028X-Injected: yes")), refusedFrom);
    assert.equal(await t.send(mail("x\u0085y")), refusedFrom);
    assert.equal(await t.send(mail("x\u009b2J")), refusedFrom);
    assert.equal(await t.send(Buffer.from("MAIL FROM:<josé@ex.example> SMTPUTF8\r\n")), "250 2.1.0 Ok\r\n");
    const rcpt = (address: string) => Buffer.from(`RCPT TO:<${address}>\r\n`);
    assert.equal(await t.send(rcpt('"\u202egnp.exe\u2029Bcc: victim@evil"@ex.example')), refusedTo);
    assert.equal(await t.send(rcpt("a\u2066b@ex.example")), refusedTo);
    assert.equal(await t.send(rcpt("用户@例子.广告")), "250 2.1.5 Ok\r\n");
  });
});

describe("VT and FF are white space, as in Postfix's tokenizer", () => {
  test("DATA<VT> and DATA<FF> are DATA: the message that follows is never run as commands", async () => {
    for (const white of ["\v", "\f"]) {
      const t = await greeted();
      await t.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
      assert.equal(
        await t.send(`DATA${white}\r\n`),
        '354 Enter message, ending with "." on a line by itself\r\n',
      );
      assert.equal(await t.send("RSET\r\nNOOP\r\n.\r\n"), "250 2.0.0 Ok: message accepted\r\n");
      assert.equal(t.messages[0]?.data.toString(), "RSET\r\nNOOP\r\n");
    }
  });
});

describe("white space before the verb is skipped, as Postfix's tokenizer does", () => {
  test("' BDAT 6 LAST' and '<TAB>DATA' frame their message as Postfix would", async () => {
    const t = await greeted({ config: { chunking: true } });
    await t.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
    assert.equal(await t.send(" BDAT 6 LAST\r\nHELP\r\n"), "250 2.0.0 Ok: message accepted\r\n");
    assert.equal(t.messages[0]?.data.toString(), "HELP\r\n");
    await t.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
    assert.equal(await t.send("\tDATA\r\n"), '354 Enter message, ending with "." on a line by itself\r\n');
  });

  for (const line of ["\rBDAT 6 LAST", "DATA\r", "\r\tDATA", "BDAT 6\r"]) {
    test(`${JSON.stringify(line)}: a DATA or BDAT line with a CR in it gets 521 and the session ends`, async () => {
      const t = await greeted({ config: { chunking: true } });
      await t.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
      const reply = line.includes("BDAT")
        ? "521 5.5.4 Syntax: BDAT size [LAST]\r\n"
        : "521 5.5.4 Syntax error: unreadable DATA command\r\n";
      assert.equal(await t.send(`${line}\r\nHELP\r\nNOOP\r\n`), reply);
      assert.equal(t.closed, true);
    });
  }
});
