/**
 * Cookbook: your own welcome (220) and greeting (the first line of the HELO/EHLO answer), as the seed's
 * "Modifying welcome and greeting responses". onConnect runs before the 220 and may change its text;
 * onHelo runs once the client's HELO/EHLO argument passed the checks.
 */
import { type SessionContext, SmtpServer } from "mailgate";

export class GreetingSmtpd extends SmtpServer {
  override onConnect(ctx: SessionContext): void {
    ctx.server.localResponse = `${this.settings.hostname} ESMTP mailgate, hello ${ctx.server.remoteIp}`;
  }

  override onHelo(ctx: SessionContext, heloData: string): void {
    ctx.server.heloResponse = `${this.settings.hostname} welcomes ${heloData}`;
  }
}

// Run directly (node welcome-and-greeting.js), it serves until Ctrl-C; imported, it only defines the server.
if (process.argv[1] === import.meta.filename) await new GreetingSmtpd({ ports: 2525 }).start();
