/**
 * Cookbook: your own SMTP service by subclassing (the seed's "Using the library"). Override the hooks you
 * need; every hook may be async, and throwing an SmtpError sends its reply. The 250 after DATA is sent only
 * when onMessageData has returned (or its promise resolved): hand the message on before that.
 */
import { type SessionContext, SmtpError, SmtpServer } from "mailgate";

export interface Received {
  from: string;
  to: string[];
  data: Buffer;
}

export class MySmtpd extends SmtpServer {
  /** What was accepted, for the demonstration; a real service would queue or store it. */
  readonly inbox: Received[] = [];

  override onRcptTo(_ctx: SessionContext, address: string): void {
    if (address === "blocked@example.com") throw SmtpError.code(550);
  }

  override onMessageData(ctx: SessionContext): void {
    // ctx.message.data is a Buffer: the message exactly as received (8BITMIME bodies are not UTF-8).
    this.inbox.push({ from: ctx.envelope.from, to: [...ctx.envelope.to], data: ctx.message.data });
  }
}

// Run directly (node subclassing.js), it serves until Ctrl-C; imported, it only defines the server.
if (process.argv[1] === import.meta.filename) await new MySmtpd({ ports: 2525 }).start();
