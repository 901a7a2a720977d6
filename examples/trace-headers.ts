/**
 * The seed's "Adding and testing headers": a Received header written at data start comes before every
 * header of the message; a header written when the header block ends lands right before the empty line.
 * receivedHeader() writes the trace header of RFC 5321 4.4 so that no client text can imitate its
 * structure. (In your project, import from "mailgate" instead of "../src/index.js".)
 */
import { receivedHeader, type SessionContext, SmtpServer } from "../src/index.js";
import { runIfMain } from "./run-if-main.js";

export class TracingSmtpd extends SmtpServer {
  override onMessageDataStart(ctx: SessionContext): void {
    ctx.message.write(receivedHeader(ctx, { hostname: this.settings.hostname }));
  }

  override onMessageDataHeaders(ctx: SessionContext): void {
    ctx.message.write(`X-MyHeader: 1.0${ctx.message.crlf}`);
  }
}

await runIfMain(import.meta.url, () => new TracingSmtpd({ ports: 2525 }));
