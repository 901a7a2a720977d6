/**
 * What the broker sink tests share: names unique to the run, an SMTP server whose onMessageStream delivers
 * to a sink as `mailgate serve` does, and a raw SMTP sender that reports each reply.
 */
import { randomBytes } from "node:crypto";
import type { TestContext } from "node:test";
import { type SmtpServerOptions, sessionFacts } from "../../src/index.js";
import type { MessageStore } from "../../src/store/store.js";
import { RawClient, startTestServer } from "../helpers/clients.js";

/** A name no other run uses: mailgate-test-<what>-<random>. */
export function uniqueName(what: string): string {
  return `mailgate-test-${what}-${randomBytes(5).toString("hex")}`;
}

/**
 * An SMTP server on 127.0.0.1 port 0 that delivers every message to `store` as `mailgate serve` would
 * (id and session facts included) and answers "250 ... queued as <id>"; stopped after the test.
 */
export async function startSinkServer(
  t: TestContext,
  store: MessageStore,
  options: SmtpServerOptions = {},
): Promise<number> {
  let sequence = 0;
  const run = randomBytes(3).toString("hex");
  const { port } = await startTestServer(t, {
    ...options,
    async onMessageStream(ctx, stream) {
      const id = `${run}-${++sequence}`;
      const envelope = { from: ctx.envelope.from, to: [...ctx.envelope.to], id, session: sessionFacts(ctx) };
      const receipt = await store.deliver(envelope, stream);
      return `Ok: queued as ${receipt.id}`;
    },
  });
  return port;
}

/** The queued id in a 250 reply of startSinkServer's server, or null for any other reply. */
export function queuedId(reply: string): string | null {
  return /^250 .*queued as (\S+)/.exec(reply)?.[1] ?? null;
}

/** One transaction on an open, greeted and EHLO'd client; returns the final reply (or the first refusal). */
export async function sendOne(
  client: RawClient,
  from: string,
  to: string[],
  message: Buffer,
  { smtputf8 = false, timeoutMs = 5000 } = {},
): Promise<string> {
  const mail = await client.command(`MAIL FROM:<${from}>${smtputf8 ? " SMTPUTF8" : ""}`, timeoutMs);
  if (!mail.startsWith("250")) return mail;
  for (const rcpt of to) {
    const reply = await client.command(`RCPT TO:<${rcpt}>`, timeoutMs);
    if (!reply.startsWith("250")) return reply;
  }
  const data = await client.command("DATA", timeoutMs);
  if (!data.startsWith("354")) return data;
  await client.send(Buffer.concat([message, Buffer.from(".\r\n")]));
  return client.reply(timeoutMs);
}

/** A greeted client after EHLO. */
export async function ehloClient(port: number): Promise<RawClient> {
  const client = await RawClient.greeted(port);
  const ehlo = await client.command("EHLO client.test");
  if (!ehlo.startsWith("250")) throw new Error(`EHLO refused: ${ehlo}`);
  return client;
}
