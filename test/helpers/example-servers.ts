/** For the tests of examples/ and the cookbook: quiet options, start on port 0, record, one transaction. */
import type { TestContext } from "node:test";
import type { SessionContext, SmtpServer, SmtpServerOptions } from "../../src/index.js";
import { type RawClient, silentLogger } from "./clients.js";

export const QUIET: SmtpServerOptions = {
  ports: 0,
  hosts: "127.0.0.1",
  hostname: "mx.test",
  logger: silentLogger,
  loggerSeverity: "fatal",
};

/** Starts `server`, stops it when the test ends, and returns its (first) real port. */
export async function started(t: TestContext, server: SmtpServer): Promise<number> {
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  return server.ports[0] as number;
}

/** Records the messages a server accepts, whatever its class. */
export function record(server: SmtpServer): { from: string; to: string[]; data: string }[] {
  const seen: { from: string; to: string[]; data: string }[] = [];
  const original = server.onMessageData.bind(server);
  server.onMessageData = (ctx: SessionContext) => {
    seen.push({
      from: ctx.envelope.from,
      to: [...ctx.envelope.to],
      data: ctx.message.data.toString("latin1"),
    });
    return original(ctx);
  };
  return seen;
}

/** MAIL, RCPT for each recipient, DATA and the body (ending in CRLF); every reply, in order. */
export async function transaction(
  client: RawClient,
  from: string,
  to: string[],
  body: string,
): Promise<string[]> {
  const replies = [await client.command(`MAIL FROM:<${from}>`)];
  for (const rcpt of to) replies.push(await client.command(`RCPT TO:<${rcpt}>`));
  const data = await client.command("DATA");
  replies.push(data);
  if (!data.startsWith("354")) return replies;
  client.write(`${body}.\r\n`);
  replies.push(await client.reply());
  return replies;
}
