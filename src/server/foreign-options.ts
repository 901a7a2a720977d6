/**
 * Option names that nodemailer's smtp-server users bring, with what mailgate calls the same thing, so that
 * the "Unknown option" error tells them (docs/migrating-from-smtp-server.md has the whole map).
 */
export const SMTP_SERVER_OPTIONS: Readonly<Record<string, string>> = {
  size: "maxMessageSize (bytes; SIZE is advertised with it)",
  banner: "an onConnect hook that sets ctx.server.localResponse",
  authOptional: 'authMode: "optional" (or "required")',
  disabledCommands: 'authMode: "forbidden" for AUTH, tlsMode: "forbidden" for STARTTLS',
  secure: "tlsPorts (the ports that speak TLS from the first byte)",
  key: "tlsKey (PEM in memory) or tlsKeyPath (a file path)",
  cert: "tlsCert (PEM in memory) or tlsCertPath (a file path)",
  ca: "tlsCa (PEM in memory) or tlsCaPath (a file path)",
  maxClients: "maxConnections",
  socketTimeout: "ioCmdTimeout (milliseconds)",
  closeTimeout: "the timeout of stop({ timeout })",
  hideSTARTTLS: 'tlsMode: "forbidden"',
  hidePIPELINING: "pipeliningExtension: false",
  hide8BITMIME: "internationalizationExtensions: false (8BITMIME and SMTPUTF8 together)",
  hideSMTPUTF8: "internationalizationExtensions: false (8BITMIME and SMTPUTF8 together)",
  authMethods: 'authMechanisms (a string: "PLAIN LOGIN")',
  allowInsecureAuth: "authOverPlaintext",
  useProxy: "proxyPorts and proxyTrusted",
  useXClient: "xclientTrusted",
  useXForward: "xclientTrusted",
  name: "hostname",
  onData: "onMessageStream(ctx, stream), returning a promise instead of calling back",
  onClose: "onDisconnect(ctx)",
};
