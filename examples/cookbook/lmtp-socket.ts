/**
 * LMTP final delivery on a UNIX socket (RFC 2033), as an MTA such as Postfix hands it over: after the
 * data, every recipient gets its own reply. Here two mailboxes accept, a full one answers 452 4.2.2 and
 * an unknown one is refused at RCPT time with 550 5.1.1.
 *
 * The LmtpServer seed's per-command reply callback maps onto the hooks: refusing a MAIL or RCPT line
 * with a custom enhanced code is `throw new SmtpError(code, text, enhancedCode)` in onMailFrom/onRcptTo.
 *
 * Postfix: `mailbox_transport = lmtp:unix:/var/run/mailgate/lmtp.sock` (the socket's directory must be
 * reachable by Postfix, and socketMode should let it write, e.g. 0o660 with a shared group).
 */
import {
  type RecipientOutcome,
  type SessionContext,
  SmtpError,
  SmtpServer,
  type SmtpServerOptions,
} from "mailgate";

export class MailboxLmtpd extends SmtpServer {
  /** Delivered messages per mailbox, for the demonstration. */
  readonly mailboxes = new Map<string, Buffer[]>([
    ["alice@example.test", []],
    ["bob@example.test", []],
    ["full@example.test", []],
  ]);

  constructor(options: SmtpServerOptions) {
    super({ ...options, lmtp: true });
  }

  override onRcptTo(_ctx: SessionContext, address: string): void {
    if (!this.mailboxes.has(address.toLowerCase())) {
      throw new SmtpError(550, "Recipient does not exist over here", "5.1.1");
    }
  }

  override onMessageData(ctx: SessionContext): RecipientOutcome[] {
    // One outcome per accepted recipient, in RCPT order.
    return ctx.envelope.to.map((recipient) => {
      const mailbox = recipient.toLowerCase();
      if (mailbox === "full@example.test") return new SmtpError(452, "Mailbox full", "4.2.2");
      this.mailboxes.get(mailbox)?.push(ctx.message.data);
      return `<${recipient}> delivered`;
    });
  }
}

// Run directly (node example.js), it serves until Ctrl-C; imported, it only defines the server.
if (process.argv[1] === import.meta.filename) {
  const server = new MailboxLmtpd({ socketPath: "/tmp/mailgate-lmtp.sock" });
  await server.start();
  // stop() removes the socket file, which the next start would otherwise find in its way.
  process.once("SIGINT", () => void server.stop());
}
