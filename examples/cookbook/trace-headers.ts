/**
 * The seed's "Adding and testing headers": a Received header written at data start comes before every
 * header of the message; a header written when the header block ends lands right before the empty line.
 * receivedHeader() writes the trace header of RFC 5321 4.4 so that no client text can imitate its
 * structure.
 */
import { receivedHeader, type SessionContext, SmtpServer } from "mailgate";

export class TracingSmtpd extends SmtpServer {
  override onMessageDataStart(ctx: SessionContext): void {
    ctx.message.write(receivedHeader(ctx, { hostname: this.settings.hostname }));
  }

  override onMessageDataHeaders(ctx: SessionContext): void {
    ctx.message.write(`X-MyHeader: 1.0${ctx.message.crlf}`);
  }
}

// Run directly (node example.js), it serves until Ctrl-C; imported, it only defines the server.
if (process.argv[1] === import.meta.filename) await new TracingSmtpd({ ports: 2525 }).start();
