/**
 * The server's settings turned into what its parts use, once per server: the session's configuration,
 * the SNI certificate list, the SASL mechanisms; and the check for misspelt option names.
 */

import type { SessionConfig } from "../protocol/session.js";
import { isSaslMechanismName, SASL_MECHANISMS, type SaslMechanismName } from "../sasl/mechanism.js";
import { type AddressLimiter, authFailuresByAddress, MemoryAddressLimiter } from "./address-limiter.js";
import { SMTP_SERVER_OPTIONS } from "./foreign-options.js";
import { HOOK_NAMES } from "./hook-binding.js";
import { severityEnabled } from "./logger.js";
import { OPTION_SPECS, type ServerSettings } from "./options.js";

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
    heloStrict: s.heloStrict,
    maxCommandLineLength: s.maxCommandLineLength,
    ioBufferMaxSize: s.ioBufferMaxSize,
    messageChunkSize: s.ioBufferChunkSize,
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

/** A misspelt option would otherwise be ignored in silence: name it, and the closest known one. */
export function rejectUnknownOptions(given: Record<string, unknown>): void {
  const known = [
    ...OPTION_SPECS.map((spec) => spec.name as string),
    ...HOOK_NAMES,
    "logger",
    "authFailureLimiter",
    "observer",
  ];
  for (const name of Object.keys(given)) {
    if (known.includes(name) || given[name] === undefined) continue;
    const foreign = SMTP_SERVER_OPTIONS[name];
    if (foreign !== undefined) {
      throw new TypeError(`Unknown option ${name} (smtp-server's); mailgate's is ${foreign}.`);
    }
    const close = known.find((candidate) =>
      candidate.toLowerCase().startsWith(name.toLowerCase().slice(0, 6)),
    );
    throw new TypeError(`Unknown option ${name}${close ? `; did you mean ${close}?` : "."}`);
  }
}

/** "host=cert.pem:key.pem, *.example.org=c.pem:k.pem" (tlsSniCertificates). */
export function parseSniCertificates(
  text: string,
): { hostname: string; certPath: string; keyPath: string }[] {
  return text
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean)
    .map((item) => {
      const match = /^([^=\s]+)=([^:]+):(.+)$/.exec(item);
      if (!match) {
        throw new TypeError(
          `Invalid option tlsSniCertificates: "${item}"; each item is hostname=certificate.pem:key.pem.`,
        );
      }
      return { hostname: match[1] as string, certPath: match[2] as string, keyPath: match[3] as string };
    });
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
