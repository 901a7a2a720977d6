/**
 * The seed's receiving-event examples: refuse a message that grows too big while it arrives (552, sent
 * after the end of the data), and a "teergrube" that slows down clients that look like spammers.
 * The receiving hook runs once per chunk received (not per line) and may be async: awaiting a timer
 * delays only this session, and reading from the client pauses meanwhile.
 * (In your project, import from "mailgate" instead of "../src/index.js".)
 */
import { setTimeout as sleep } from "node:timers/promises";
import { type SessionContext, SmtpError, SmtpServer, type SmtpServerOptions } from "../src/index.js";
import { runIfMain } from "./run-if-main.js";

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

await runIfMain(import.meta.url, () => new LimitingSmtpd({ ports: 2525 }));
