/**
 * RFC 4954 4: an AUTH command with an initial response may be up to 12,288 octets long, far beyond the
 * 512 of other command lines; real XOAUTH2 tokens sent inline (nodemailer does) need it.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { type TestContext, test } from "node:test";
import nodemailer from "nodemailer";
import { RawClient, startRecordingServer } from "../helpers/clients.js";

async function oauthServer(t: TestContext) {
  const tokens: string[] = [];
  const recording = await startRecordingServer(t, {
    authMode: "required",
    authMechanisms: "XOAUTH2 PLAIN",
    authOverPlaintext: true,
    onAuth(_ctx, _authorizationId, user, secret) {
      tokens.push(secret);
      return user;
    },
  });
  return { ...recording, tokens };
}

test("nodemailer sends a 6,000-character XOAUTH2 token inline: the AUTH line is accepted and the mail delivered", async (t) => {
  const { port, tokens, waitForMessages } = await oauthServer(t);
  const accessToken = randomBytes(4500).toString("base64"); // 6,000 characters, 8,000+ in the AUTH line
  const transport = nodemailer.createTransport({
    host: "127.0.0.1",
    port,
    secure: false,
    ignoreTLS: true,
    auth: { type: "OAuth2", user: "alice@client.test", accessToken },
  });
  t.after(() => transport.close());
  await transport.sendMail({ from: "alice@client.test", to: "bob@mx.test", subject: "hi", text: "hello" });
  assert.deepEqual(tokens, [accessToken]);
  assert.equal((await waitForMessages(1)).length, 1);
});

test("an AUTH line up to 12,288 octets is read; a longer one, or another command over 512, is not", async (t) => {
  const { port, tokens } = await oauthServer(t);
  const client = await RawClient.greeted(port);
  t.after(() => client.close());
  await client.command("EHLO client.test");
  const secret = "s".repeat(9000);
  const plain = Buffer.from(`\0alice\0${secret}`).toString("base64");
  const line = `AUTH PLAIN ${plain}`;
  assert.ok(line.length + 2 <= 12_290 && line.length > 12_000, `line of ${line.length} octets`);
  assert.match(await client.command(line), /^235 2\.7\.0 /);
  assert.deepEqual(tokens, [secret]);

  const other = await RawClient.greeted(port);
  t.after(() => other.close());
  await other.command("EHLO client.test");
  assert.match(await other.command(`auth plain ${"A".repeat(12_400)}`), /^500 5\.5\.2 Line too long/);
  assert.match(await other.command(`NOOP ${"x".repeat(600)}`), /^500 5\.5\.2 Line too long/);
  assert.match(await other.command("NOOP"), /^250 /);
});
