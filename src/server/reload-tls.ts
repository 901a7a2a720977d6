/** SIGHUP's work: the TLS certificate files read again (renewed by ACME); a failed reload keeps the old ones. */
import type { SmtpServer } from "./server.js";

export function reloadTlsCertificates(server: SmtpServer): void {
  server.tls?.reload().then(
    () => server.onLogging(null, "info", "TLS certificates reloaded"),
    (error: Error) => server.onLogging(null, "error", error.message),
  );
}
