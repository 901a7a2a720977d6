/**
 * Cipher and protocol presets, named after the seed's constants (TLS_CIPHERS_* and TLS_METHODS_* in
 * midi-smtp-server's lib/midi-smtp-server/tls-transport.rb, which take them from the OWASP TLS Cipher
 * String Cheat Sheet: A+, A, B, C, C-). The cipher strings are the seed's, unchanged.
 *
 * Cipher strings configure TLS 1.2 and older only. TLS 1.3 suites are a separate OpenSSL setting
 * (`ciphersuites`): node keeps OpenSSL's TLS 1.3 defaults (TLS_AES_256_GCM_SHA384,
 * TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256) unless the string itself names TLS_* suites,
 * so TLS 1.3 stays enabled with its defaults under every preset.
 *
 * Protocol versions: the seed's TLS_METHODS_ADVANCED ("TLSv1_2") becomes "TLS 1.2 or newer" and
 * TLS_METHODS_LEGACY ("TLSv1_1") "TLS 1.1 or newer". OpenSSL 3 refuses TLS 1.0/1.1 below security
 * level 0 (they sign the handshake with SHA-1/MD5), so the two presets that allow TLS 1.1 end with
 * "@SECLEVEL=0"; that also re-admits weak keys, which is what those compatibility presets are for.
 * DES-CBC3-SHA in `legacy` is kept as in the seed; OpenSSL builds without 3DES simply skip it.
 */
import { createSecureContext, type SecureVersion } from "node:tls";

export interface TlsPreset {
  /** OpenSSL cipher list for TLS 1.2 and older (TLS 1.3 keeps its defaults). */
  ciphers: string;
  /** Lowest protocol version accepted; the highest is always TLS 1.3. */
  minVersion: SecureVersion;
}

export type TlsPresetName = "advancedPlus" | "advanced" | "broad" | "widest" | "legacy";

const ADVANCED_PLUS =
  "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256";
const ADVANCED = `${ADVANCED_PLUS}:DHE-RSA-AES256-SHA256:DHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA256`;
const BROAD = `${ADVANCED}:ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-SHA:DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA`;
const WIDEST = `${ADVANCED}:ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-SHA:AES256-GCM-SHA384:AES128-GCM-SHA256:AES256-SHA256:AES128-SHA256:AES256-SHA:AES128-SHA:DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA`;
const LEGACY = `${ADVANCED}:ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-SHA:AES256-GCM-SHA384:AES128-GCM-SHA256:AES256-SHA256:AES128-SHA256:AES256-SHA:AES128-SHA:DES-CBC3-SHA:DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA`;

/** The presets; `advancedPlus` is the default. */
export const TLS_PRESETS: Readonly<Record<TlsPresetName, Readonly<TlsPreset>>> = Object.freeze({
  /** OWASP A+ (seed: TLS_CIPHERS_ADVANCED_PLUS, TLS_METHODS_ADVANCED). */
  advancedPlus: Object.freeze({ ciphers: ADVANCED_PLUS, minVersion: "TLSv1.2" }),
  /** OWASP A (seed: TLS_CIPHERS_ADVANCED, TLS_METHODS_ADVANCED). */
  advanced: Object.freeze({ ciphers: ADVANCED, minVersion: "TLSv1.2" }),
  /** OWASP B, broad compatibility (seed: TLS_CIPHERS_BROAD_COMP, TLS_METHODS_ADVANCED). */
  broad: Object.freeze({ ciphers: BROAD, minVersion: "TLSv1.2" }),
  /** OWASP C, widest compatibility (seed: TLS_CIPHERS_WIDEST_COMP, TLS_METHODS_LEGACY). */
  widest: Object.freeze({ ciphers: `${WIDEST}:@SECLEVEL=0`, minVersion: "TLSv1.1" }),
  /** OWASP C-, legacy (seed: TLS_CIPHERS_LEGACY, TLS_METHODS_LEGACY). */
  legacy: Object.freeze({ ciphers: `${LEGACY}:@SECLEVEL=0`, minVersion: "TLSv1.1" }),
} satisfies Record<TlsPresetName, TlsPreset>);

export const DEFAULT_TLS_PRESET: TlsPresetName = "advancedPlus";

export const TLS_PRESET_NAMES = Object.keys(TLS_PRESETS) as TlsPresetName[];

/** The versions `tlsMinVersion` accepts, oldest first. */
export const TLS_VERSIONS: readonly SecureVersion[] = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];

export function isTlsPresetName(value: unknown): value is TlsPresetName {
  return typeof value === "string" && Object.hasOwn(TLS_PRESETS, value);
}

/** Checks a `tlsMinVersion` value and returns it typed; otherwise throws one sentence naming the option. */
export function validateTlsMinVersion(value: unknown): SecureVersion {
  if (typeof value === "string" && (TLS_VERSIONS as readonly string[]).includes(value)) {
    return value as SecureVersion;
  }
  throw new RangeError(
    `Invalid tlsMinVersion ${JSON.stringify(value)}: give one of ${TLS_VERSIONS.map((v) => `"${v}"`).join(", ")}.`,
  );
}

/**
 * Checks a `tlsCiphers` value by building a secure context with it, as node would at start; an
 * OpenSSL cipher string that matches no cipher throws one sentence naming the option. (OpenSSL
 * ignores unknown names as long as one entry matches, so "FOO:AES128-SHA" passes, as it would in use.)
 */
export function validateTlsCiphers(value: unknown): string {
  if (typeof value !== "string" || value.trim() === "") {
    throw new TypeError(
      `Invalid tlsCiphers ${JSON.stringify(value)}: give an OpenSSL cipher string such as "${ADVANCED_PLUS}", or a preset with tlsPreset.`,
    );
  }
  const ciphers = value.trim();
  try {
    createSecureContext({ ciphers });
  } catch (error) {
    const reason =
      error instanceof Error ? error.message.replace(/^error:[0-9A-F]+:[^:]*::/i, "") : String(error);
    throw new TypeError(
      `Invalid tlsCiphers ${JSON.stringify(ciphers)} (OpenSSL: ${reason}): give an OpenSSL cipher string that names at least one cipher this OpenSSL ${process.versions.openssl} knows (see \`openssl ciphers -v\`), or a preset with tlsPreset.`,
      { cause: error },
    );
  }
  return ciphers;
}

/**
 * The cipher string and minimum version in force: the preset (default `advancedPlus`), with
 * `ciphers` / `minVersion` replacing its parts when given. Each invalid value throws one sentence
 * naming its option (tlsPreset, tlsCiphers, tlsMinVersion).
 */
export function resolveTlsSettings(
  options: { preset?: string; ciphers?: string; minVersion?: string } = {},
): TlsPreset {
  const presetName = options.preset ?? DEFAULT_TLS_PRESET;
  if (!isTlsPresetName(presetName)) {
    throw new RangeError(
      `Invalid tlsPreset ${JSON.stringify(presetName)}: give one of ${TLS_PRESET_NAMES.map((n) => `"${n}"`).join(", ")}, or tlsCiphers and tlsMinVersion.`,
    );
  }
  const preset = TLS_PRESETS[presetName];
  const ciphers = options.ciphers === undefined ? preset.ciphers : validateTlsCiphers(options.ciphers);
  const minVersion =
    options.minVersion === undefined ? preset.minVersion : validateTlsMinVersion(options.minVersion);
  return { ciphers, minVersion };
}
