/**
 * Cookbook: a size guard (the seed's "Incoming data validation"). The receiving hook runs once per chunk
 * received (not per line), with ctx.message.bytesize counting the client's bytes so far: a message that
 * grows past the limit is refused with 552 once its end has arrived, and the session goes on.
 * (`maxMessageSize` does the same without a hook, and advertises the limit with SIZE.)
 */
import { type SessionContext, SmtpError, SmtpServer, type SmtpServerOptions } from "mailgate";

export class SizeGuardSmtpd extends SmtpServer {
  constructor(
    options: SmtpServerOptions,
    private readonly maxMessageBytes = 1024 * 1024,
  ) {
    super(options);
  }

  override onMessageDataReceiving(ctx: SessionContext): void {
    if (ctx.message.bytesize > this.maxMessageBytes) throw SmtpError.code(552);
  }
}

// Run directly (node size-guard.js), it serves until Ctrl-C; imported, it only defines the server.
if (process.argv[1] === import.meta.filename) await new SizeGuardSmtpd({ ports: 2525 }).start();
