/**
 * The seed's "Modifying MAIL FROM and RCPT TO addresses": hooks that return a value replace the address.
 * mailgate already strips the angle brackets, so normalising is just lower-casing here.
 */
import { type SessionContext, SmtpServer } from "mailgate";

export class NormalizingSmtpd extends SmtpServer {
  override onMailFrom(_ctx: SessionContext, address: string): string {
    return address.toLowerCase();
  }

  override onRcptTo(_ctx: SessionContext, address: string): string {
    const normalized = address.toLowerCase();
    this.onLogging(null, "debug", `Normalized to: [${normalized}]`);
    return normalized;
  }

  override onMessageData(ctx: SessionContext): void {
    this.onLogging(ctx, "info", `message from ${ctx.envelope.from} for ${ctx.envelope.to.join(", ")}`);
  }
}

// Run directly (node example.js), it serves until Ctrl-C; imported, it only defines the server.
if (process.argv[1] === import.meta.filename) await new NormalizingSmtpd({ ports: 2525 }).start();
