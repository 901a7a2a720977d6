/**
 * Cookbook: AUTH, in the seed's mixed mode ("Authentication status in mixed mode"). With authMode
 * "optional" anyone may deliver to our own domain, and only an authenticated client may relay elsewhere.
 * AUTH is offered only inside TLS (STARTTLS here, with a generated test certificate unless you give
 * tlsCertPath/tlsKeyPath); `authOverPlaintext` would allow it without, which you should not.
 *
 * onAuth receives the credentials; for PLAIN, LOGIN and CRAM-MD5, credentials.verifyPassword(password)
 * compares in constant time (the only way to check CRAM-MD5). What it returns becomes the authorization
 * id; throwing SmtpError.code(535) refuses. Store password hashes, not passwords, in a real service
 * (`mailgate serve --auth-users` uses scrypt): this map is for the demonstration.
 */
import {
  type SaslCredentials,
  type SaslMechanismName,
  type SessionContext,
  SmtpError,
  SmtpServer,
  type SmtpServerOptions,
} from "mailgate";

export class SubmissionSmtpd extends SmtpServer {
  constructor(
    options: SmtpServerOptions,
    private readonly passwords: ReadonlyMap<string, string>,
    private readonly localDomain = "example.com",
  ) {
    super({ tlsMode: "optional", authMode: "optional", authMechanisms: "PLAIN LOGIN", ...options });
  }

  override onAuth(
    _ctx: SessionContext,
    _authorizationId: string,
    user: string,
    _secret: string,
    _mechanism: SaslMechanismName,
    credentials: SaslCredentials,
  ): string {
    const password = this.passwords.get(user);
    if (password === undefined || !credentials.verifyPassword?.(password)) throw SmtpError.code(535);
    return user;
  }

  override onRcptTo(ctx: SessionContext, address: string): void {
    const local = address.toLowerCase().endsWith(`@${this.localDomain}`);
    // 554 5.7.1, as Postfix answers a relay attempt; the client may AUTH and try again.
    if (!local && !ctx.server.authenticated) throw new SmtpError(554, "Relay access denied", "5.7.1");
  }
}

// Run directly (node auth.js), it serves until Ctrl-C; imported, it only defines the server.
if (process.argv[1] === import.meta.filename) {
  await new SubmissionSmtpd({ ports: 2587 }, new Map([["alice", "a long passphrase"]])).start();
}
