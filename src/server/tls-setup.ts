/**
 * The server's TLS provider options, made once from its settings and the TLS material its options
 * gave (files, memory, a ready context, an SNI callback) and checked at construction, so that a
 * contradiction fails `new SmtpServer()` rather than start().
 */
import { deriveCertificateNames } from "../tls/certificates.js";
import type { TlsContextOptions } from "../tls/context.js";
import { checkTlsMaterial } from "../tls/material.js";
import { resolveTlsSettings } from "../tls/presets.js";
import { parseSniCertificates } from "../tls/sni.js";
import { parseHostItems } from "./addresses.js";
import type { TlsMaterialSettings } from "./option-table.js";
import type { ServerSettings } from "./options.js";

/** The settings a ready-made context excludes when they are given: it has its own ciphers and keys. */
const CONTEXT_MAKING_SETTINGS = ["tlsPreset", "tlsCiphers", "tlsMinVersion", "tlsTicketKeyRotation"] as const;

/**
 * The provider's options (without its logger and ticket-key source, which start() adds); throws one
 * sentence for an invalid or contradictory TLS option.
 */
export function tlsProviderOptions(
  s: ServerSettings,
  material: Partial<TlsMaterialSettings>,
  /** The options as given, to tell a setting given from its default. */
  given: Record<string, unknown>,
): TlsContextOptions {
  resolveTlsSettings({
    preset: s.tlsPreset,
    ciphers: s.tlsCiphers || undefined,
    minVersion: s.tlsMinVersion || undefined,
  });
  const options: TlsContextOptions = {
    ...(s.tlsCertPath ? { certPath: s.tlsCertPath } : {}),
    ...(s.tlsKeyPath ? { keyPath: s.tlsKeyPath } : {}),
    ...(material.tlsCert === undefined ? {} : { certPem: material.tlsCert }),
    ...(material.tlsKey === undefined ? {} : { keyPem: material.tlsKey }),
    ...(s.tlsCaPath ? { caPath: s.tlsCaPath } : {}),
    ...(material.tlsCa === undefined ? {} : { caPem: material.tlsCa }),
    ...(material.tlsSecureContext === undefined ? {} : { secureContext: material.tlsSecureContext }),
    ...(material.tlsSniCallback === undefined ? {} : { sniCallback: material.tlsSniCallback }),
    ...(s.tlsCertCn ? { cn: s.tlsCertCn } : {}),
    ...(s.tlsCertSan ? { san: splitNames(s.tlsCertSan) } : {}),
    preset: s.tlsPreset,
    ...(s.tlsCiphers ? { ciphers: s.tlsCiphers } : {}),
    ...(s.tlsMinVersion ? { minVersion: s.tlsMinVersion } : {}),
    ...(s.tlsRequestCert ? { requestCert: true } : {}),
    ticketKeyRotation: s.tlsTicketKeyRotation,
    sniCertificates: parseSniCertificates(s.tlsSniCertificates),
  };
  checkTlsMaterial(
    options,
    CONTEXT_MAKING_SETTINGS.filter((name) => given[name] !== undefined),
  );
  if (options.secureContext !== undefined) return options;
  // A generated certificate's names, by the seed's rules.
  const listenNames = parseHostItems(s.hosts).filter((h) => h !== "*");
  const names = deriveCertificateNames(listenNames, [], options.cn, options.san, s.hostname);
  return { ...options, cn: names.cn, san: names.san };
}

function splitNames(text: string): string[] {
  return text
    .split(",")
    .map((n) => n.trim())
    .filter(Boolean);
}
