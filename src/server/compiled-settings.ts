/**
 * The server's settings turned into what its sessions use, once per server: the session's
 * configuration, with the SASL mechanisms parsed.
 */

import type { SessionConfig } from "../protocol/session.js";
import { isSaslMechanismName, SASL_MECHANISMS, type SaslMechanismName } from "../sasl/mechanism.js";
import { type AddressLimiter, authFailuresByAddress, MemoryAddressLimiter } from "./address-limiter.js";
import { severityEnabled } from "./logger.js";
import type { ServerSettings } from "./options.js";

/**
 * What every session of the server is configured with.
 * @param authFailureLimiter where AUTH failures per address are counted (default: in memory)
 */
export function compileSessionConfig(s: ServerSettings, authFailureLimiter?: AddressLimiter): SessionConfig {
  return {
    hostname: s.hostname,
    lmtp: s.lmtp,
    crlfMode: s.crlfMode,
    // RFC 2033 5: LMTP always offers PIPELINING.
    pipelining: s.pipeliningExtension || s.lmtp,
    internationalization: s.internationalizationExtensions,
    chunking: s.chunkingExtension,
    dsn: s.dsnExtension,
    requireTls: s.requireTlsExtension,
    maxMessageSize: s.maxMessageSize,
    maxRecipients: s.maxRecipients,
    maxBadCommands: s.maxBadCommands,
    maxRecipientRefusals: s.maxRecipientRefusals,
    heloStrict: s.heloStrict,
    maxCommandLineLength: s.maxCommandLineLength,
    ioBufferMaxSize: s.ioBufferMaxSize,
    messageChunkSize: s.ioBufferChunkSize,
    bufferMessagesUpTo: s.bufferMessagesUpTo,
    logDialog: severityEnabled("debug", s.loggerSeverity),
    tls: s.tlsMode !== "forbidden",
    tlsRequired: s.tlsMode === "required",
    auth: {
      mode: s.authMode,
      mechanisms: parseMechanisms(s.authMechanisms),
      overPlaintext: s.authOverPlaintext,
      maxFailures: s.maxAuthFailures,
      ...(s.maxAuthFailuresPerIp > 0 && {
        addressLimit: authFailuresByAddress(
          authFailureLimiter ??
            new MemoryAddressLimiter({ limit: s.maxAuthFailuresPerIp, windowMs: s.authFailureWindow }),
        ),
      }),
    },
  };
}

/** `config` with AUTH failures per address counted by `limiter` (a primary's, for all workers). */
export function withAuthFailureLimiter(config: SessionConfig, limiter: AddressLimiter): SessionConfig {
  return { ...config, auth: { ...config.auth, addressLimit: authFailuresByAddress(limiter) } };
}

function parseMechanisms(text: string): SaslMechanismName[] {
  const names = text
    .toUpperCase()
    .split(/[\s,]+/)
    .filter(Boolean);
  for (const name of names) {
    if (!isSaslMechanismName(name)) {
      throw new TypeError(
        `Invalid option authMechanisms: "${name}" is not one of ${SASL_MECHANISMS.join(", ")}.`,
      );
    }
  }
  return names as SaslMechanismName[];
}
