/**
 * Cookbook: a teergrube (tar pit) that slows down clients that look like spammers. The receiving hook may
 * be async: awaiting a timer delays only this session, and reading from that client pauses meanwhile, so
 * it costs the server a timer, not a thread. The session's deadline (ioCmdTimeout, 30 s by default) keeps
 * running while it waits: keep the delay well below it, or the slowed client is cut off instead.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { type SessionContext, SmtpServer, type SmtpServerOptions } from "mailgate";

export class TeergrubeSmtpd extends SmtpServer {
  constructor(
    options: SmtpServerOptions,
    private readonly delayMs = 15_000,
    private readonly suspect = /domain/,
  ) {
    super(options);
  }

  override async onMessageDataReceiving(ctx: SessionContext): Promise<void> {
    // Don't let the spammer continue fast: wait before reading the next data.
    if (this.suspect.test(ctx.server.helo)) await sleep(this.delayMs);
  }
}

// Run directly (node teergrube.js), it serves until Ctrl-C; imported, it only defines the server.
if (process.argv[1] === import.meta.filename) await new TeergrubeSmtpd({ ports: 2525 }).start();
