/**
 * The seed's "Adding and testing headers": a Received header written at data start comes before every
 * header of the message; a header written when the header block ends lands right before the empty line.
 * (In your project, import from "mailgate" instead of "../src/index.js".)
 */
import { type SessionContext, SmtpServer } from "../src/index.js";
import { runIfMain } from "./run-if-main.js";

function rfc5322Date(date: Date): string {
  return date.toUTCString().replace("GMT", "+0000");
}

export class TracingSmtpd extends SmtpServer {
  override onMessageDataStart(ctx: SessionContext): void {
    const { server } = ctx;
    ctx.message.write(
      `Received: from ${server.remoteHost} (${server.remoteIp}) by ${server.localHost} (${server.localIp}) ` +
        `with MySmtpd Server; ${rfc5322Date(new Date())}${ctx.message.crlf}`,
    );
  }

  override onMessageDataHeaders(ctx: SessionContext): void {
    ctx.message.write(`X-MyHeader: 1.0${ctx.message.crlf}`);
  }
}

await runIfMain(import.meta.url, () => new TracingSmtpd({ ports: 2525 }));
