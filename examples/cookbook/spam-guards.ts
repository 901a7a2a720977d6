/**
 * The seed's "Responding with errors on special conditions" and "Incoming data validation":
 * 550 for a blocked recipient, 421 to drop a spammer at once, 421 after too many unknown commands.
 * Throwing an SmtpError sends its reply; a 421 also closes the connection.
 */
import { type SessionContext, SmtpError, SmtpServer } from "mailgate";

export class GuardedSmtpd extends SmtpServer {
  override onRcptTo(_ctx: SessionContext, address: string): void {
    if (address === "not.name@domain.con") throw SmtpError.code(550);
    if (address === "spam.trap@domain.con") throw SmtpError.code(421, "421 Abort: Identified spammer!");
  }

  override onProcessLineUnknown(ctx: SessionContext, _line: string): void {
    // ctx.server.exceptions counts this session's errors so far (unknown commands included).
    if (ctx.server.exceptions >= 5) {
      throw SmtpError.code(421, "421 Abort: too many unknown commands where sent!");
    }
    // Returning lets the server answer the standard 500.
  }
}

// Run directly (node example.js), it serves until Ctrl-C; imported, it only defines the server.
if (process.argv[1] === import.meta.filename) await new GuardedSmtpd({ ports: 2525 }).start();
