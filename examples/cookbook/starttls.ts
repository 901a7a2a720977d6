/**
 * Cookbook: STARTTLS with the generated certificate (the seed's "Encryption" and "Expose active
 * SSLContext"). Without tlsCertPath/tlsKeyPath, start() makes a self-signed certificate in memory (90 days,
 * named after `hostname` and the hosts; a warning says it is for testing only). server.tls exposes it:
 * `certificatePem` is what a test client trusts as its `ca`, `certificate` the X509Certificate, `generated`
 * says it is the test one. With tlsMode "required", MAIL, RCPT and DATA get 530 before STARTTLS; in a
 * session, ctx.server.tls says what was negotiated.
 */
import { type SessionContext, SmtpServer, type SmtpServerOptions, type TlsSessionInfo } from "mailgate";

export class TlsOnlySmtpd extends SmtpServer {
  /** The TLS of each accepted message's session, for the demonstration. */
  readonly sessions: TlsSessionInfo[] = [];

  constructor(options: SmtpServerOptions) {
    super({ tlsMode: "required", ...options });
  }

  override onMessageData(ctx: SessionContext): string {
    if (ctx.server.tls) this.sessions.push(ctx.server.tls);
    return `Ok: received over ${ctx.server.tls?.protocol}`;
  }
}

// Run directly (node starttls.js): prints the certificate a client should trust, then serves until Ctrl-C.
if (process.argv[1] === import.meta.filename) {
  const server = new TlsOnlySmtpd({ ports: 2525, hostname: "localhost" });
  await server.start();
  console.log(server.tls?.certificatePem);
}
