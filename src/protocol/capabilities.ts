/**
 * The EHLO and LHLO answer (RFC 5321 4.1.1.1): the greeting line, then one line per extension offered
 * in this session's state. Pure: the same settings and state give the same lines.
 */
import type { SessionConfig } from "./session-config.js";
import { XCLIENT_ATTRIBUTES, XFORWARD_ATTRIBUTES } from "./xclient.js";

/** What of the session's state decides which extensions are offered. */
export interface CapabilityState {
  /** The first line (ctx.server.heloResponse). */
  heloResponse: string;
  /** TLS is active. */
  encrypted: boolean;
  /** The transport can start TLS. */
  canStartTls: boolean;
  /** The peer may use XCLIENT and XFORWARD. */
  xclientTrusted: boolean;
}

/** The lines of the 250 reply to EHLO or LHLO, in the order they have always been sent. */
export function capabilities(config: SessionConfig, state: CapabilityState): string[] {
  const lines = [state.heloResponse];
  if (config.pipelining) lines.push("PIPELINING");
  if (config.internationalization) lines.push("8BITMIME", "SMTPUTF8");
  if (config.chunking) lines.push("CHUNKING", "BINARYMIME");
  if (config.dsn) lines.push("DSN");
  const { encrypted } = state;
  if (config.auth.mode !== "forbidden" && (encrypted || config.auth.overPlaintext)) {
    lines.push(`AUTH ${config.auth.mechanisms.join(" ")}`);
  }
  if (config.tls && state.canStartTls && !encrypted) lines.push("STARTTLS");
  if (config.requireTls && encrypted) lines.push("REQUIRETLS");
  if (state.xclientTrusted) {
    lines.push(`XCLIENT ${XCLIENT_ATTRIBUTES.join(" ")}`, `XFORWARD ${XFORWARD_ATTRIBUTES.join(" ")}`);
  }
  lines.push(config.maxMessageSize > 0 ? `SIZE ${config.maxMessageSize}` : "SIZE");
  lines.push("ENHANCEDSTATUSCODES", "HELP");
  return lines;
}
