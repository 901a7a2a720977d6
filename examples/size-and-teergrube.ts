/**
 * The seed's receiving-event examples: refuse a message that grows too big while it arrives (552, sent
 * after the end of the data), and a "teergrube" that slows down clients that look like spammers.
 * The receiving hook runs once per chunk received (not per line) and may be async: awaiting a timer
 * delays only this session, and reading from the client pauses meanwhile.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { type SessionContext, SmtpError, SmtpServer, type SmtpServerOptions } from "mailgate";

export class LimitingSmtpd extends SmtpServer {
  constructor(
    options: SmtpServerOptions,
    private readonly maxMsgSize = 1024 * 1024,
    private readonly teergrubeDelayMs = 15_000,
  ) {
    super(options);
  }

  override async onMessageDataReceiving(ctx: SessionContext): Promise<void> {
    if (ctx.message.bytesize > this.maxMsgSize) throw SmtpError.code(552);
    // Don't let the spammer continue fast: wait before reading the next data.
    if (/domain/.test(ctx.server.helo)) await sleep(this.teergrubeDelayMs);
  }
}

// Run directly (node example.js), it serves until Ctrl-C; imported, it only defines the server.
if (process.argv[1] === import.meta.filename) await new LimitingSmtpd({ ports: 2525 }).start();
