/**
 * Cookbook: hand the message off before the 250 (the seed's "Reliable code"). The 250 is sent only when
 * onMessageStream's promise resolves, so acknowledge only what a durable system holds: here a Maildir
 * (MaildirStore fsyncs the file and new/ first); an HttpSink or AmqpSink plugs in the same way, as every
 * store has deliver(envelope, stream). If deliver rejects, the client gets 451 and sends again later.
 * The message streams through in constant memory, whatever its size.
 */
import type { Readable } from "node:stream";
import {
  MaildirStore,
  receivedHeader,
  type SessionContext,
  SmtpServer,
  type SmtpServerOptions,
  sessionFacts,
} from "mailgate";

export class HandOffSmtpd extends SmtpServer {
  constructor(
    options: SmtpServerOptions,
    private readonly store: MaildirStore,
  ) {
    super(options);
  }

  // The trace header RFC 5321 4.4 asks for comes first. It also keeps the client's own first lines from
  // passing for MaildirStore's envelope lines when the file is read back (parseEnvelopeHeaders).
  override onMessageDataStart(ctx: SessionContext): void {
    ctx.message.write(receivedHeader(ctx, { hostname: this.settings.hostname }));
  }

  override async onMessageStream(ctx: SessionContext, stream: Readable): Promise<string> {
    const { from, to } = ctx.envelope;
    const receipt = await this.store.deliver({ from, to, session: sessionFacts(ctx) }, stream);
    return `Ok: stored as ${receipt.id}`;
  }
}

// Run directly (node hand-off-before-250.js [maildir]), it serves until Ctrl-C; imported, it only defines it.
if (process.argv[1] === import.meta.filename) {
  const store = await MaildirStore.open(process.argv[2] ?? "./Maildir");
  await new HandOffSmtpd({ ports: 2525 }, store).start();
}
