/**
 * The secure contexts mailgate makes: the options every one of them gets (preset ciphers, groups,
 * no renegotiation, the session-ticket key), and a certificate's state as a provider holds it.
 */
import { constants, type X509Certificate } from "node:crypto";
import tls from "node:tls";
import { FFDHE2048, TLS_GROUPS, type TlsPreset } from "./presets.js";

/** A certificate and key in PEM. */
export interface PemPair {
  cert: string;
  key: string;
}

/** One certificate as served: its context, and what it was made from (none for a context given ready-made). */
export interface CertificateState {
  context: tls.SecureContext;
  /** The PEM the context was made from; undefined when the context was given (tlsSecureContext). */
  pem: PemPair | undefined;
  x509: X509Certificate | undefined;
  generated: boolean;
}

/** The options for createSecureContext / tls.createServer that make a context of `pem`. */
export function secureContextOptions(
  settings: TlsPreset,
  pem: PemPair,
  ca: string | undefined,
  ticketKey: Buffer,
): tls.SecureContextOptions {
  return {
    cert: pem.cert,
    key: pem.key,
    ...(ca === undefined ? {} : { ca }),
    ciphers: settings.ciphers,
    minVersion: settings.minVersion,
    // The presets list the ciphers by priority, so the server's order wins.
    honorCipherOrder: true,
    // Elliptic-curve groups only, for TLS 1.3 as for ECDHE: see TLS_GROUPS.
    ecdhCurve: TLS_GROUPS,
    // The DHE suites (after every ECDHE suite in the presets) use RFC 7919 ffdhe2048.
    dhparam: FFDHE2048,
    // Client-initiated renegotiation (TLS 1.2 and older; TLS 1.3 has none) is refused with a
    // no_renegotiation alert. Each one costs the server a full handshake, and node's own guard (an
    // error event after 3 in 10 minutes) exists only on sockets of a tls.Server, not on the standalone
    // TLSSocket that upgradeToTls uses without client certificates.
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
    // Needed for session resumption when client certificates are requested.
    sessionIdContext: "mailgate",
    ticketKeys: ticketKey,
  };
}

/** The state of a certificate made into a context with these settings, CA and ticket key. */
export function certificateState(
  settings: TlsPreset,
  pem: PemPair,
  x509: X509Certificate,
  ca: string | undefined,
  generated: boolean,
  ticketKey: Buffer,
): CertificateState {
  const context = tls.createSecureContext(secureContextOptions(settings, pem, ca, ticketKey));
  return { context, pem: { cert: pem.cert, key: pem.key }, x509, generated };
}

/**
 * The same certificate with a new session-ticket key: a new context made from its PEM. A context
 * given ready-made keeps its own keys (mailgate cannot rekey what it did not make).
 */
export function rekeyedState(
  settings: TlsPreset,
  state: CertificateState,
  ca: string | undefined,
  ticketKey: Buffer,
): CertificateState {
  if (state.pem === undefined || state.x509 === undefined) return state;
  return certificateState(settings, state.pem, state.x509, ca, state.generated, ticketKey);
}
