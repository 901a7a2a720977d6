/**
 * Cipher and protocol presets, named after the seed's constants (TLS_CIPHERS_* and TLS_METHODS_* in
 * midi-smtp-server's lib/midi-smtp-server/tls-transport.rb, which take them from the OWASP TLS Cipher
 * String Cheat Sheet: A+, A, B, C, C-). Each preset has the seed's suites, for the seed's protocol
 * floor, with two changes:
 * - The order is ECDHE, then DHE, then RSA key exchange, then 3DES. The seed listed DHE-RSA-* before
 *   ECDHE-RSA-*, so a TLS 1.2 client offering both paid for a 2048-bit finite-field exchange where
 *   ECDHE costs less. DHE stays, after every ECDHE suite, because a TLS 1.2 client may have DHE-RSA
 *   with AES-GCM but not ECDHE-RSA with AES-GCM (older Windows Schannel versions are said to be such
 *   clients), and under `advancedPlus` (GCM only) DHE is then its only suite. In `widest` and `legacy`
 *   DHE also stays, before RSA key exchange: a client without ECDHE then keeps forward secrecy. The
 *   group is always RFC 7919's ffdhe2048 (FFDHE2048), fixed by the server, so DHE costs a bounded
 *   amount: measured here 5.4 ms of server CPU per TLS 1.2 DHE handshake against 1.5 ms with ECDHE
 *   (about 3.5 times, under a flood of one or the other), against about 110 ms more for a TLS 1.3
 *   client choosing ffdhe8192 (see TLS_GROUPS). A client that offers only DHE can make handshakes cost
 *   that much more; maxConnectionsPerIp and the TLS handshake's own timeout bound how many at once.
 * - Every ECDHE-RSA-* suite has its ECDHE-ECDSA-* twin, so that an ECDSA certificate (the default key
 *   type of common ACME clients) serves TLS 1.2 clients; OpenSSL picks the twin that matches the key.
 *
 * Cipher strings configure TLS 1.2 and older only. TLS 1.3 suites are a separate OpenSSL setting
 * (`ciphersuites`): node keeps OpenSSL's TLS 1.3 defaults (TLS_AES_256_GCM_SHA384,
 * TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256) unless the string itself names TLS_* suites,
 * so TLS 1.3 stays enabled with its defaults under every preset.
 *
 * Protocol versions: the seed's TLS_METHODS_ADVANCED ("TLSv1_2") becomes "TLS 1.2 or newer" and
 * TLS_METHODS_LEGACY ("TLSv1_1") "TLS 1.1 or newer". OpenSSL 3 refuses TLS 1.0/1.1 above security
 * level 0 (they sign the handshake with SHA-1/MD5), so the two presets that allow TLS 1.1 end with
 * "@SECLEVEL=0"; that also re-admits SHA-1 signatures in TLS 1.2 and keys of any size (client
 * certificates included), which is what those compatibility presets are for.
 * DES-CBC3-SHA in `legacy` is kept as in the seed, but OpenSSL 3 builds without "weak SSL ciphers" do
 * not have it and simply skip it (node 20's own OpenSSL 3.0 among them: "DES-CBC3-SHA:@SECLEVEL=0"
 * matches no cipher there): then `legacy` equals `widest`.
 */
import { createSecureContext, type SecureVersion } from "node:tls";

export interface TlsPreset {
  /** OpenSSL cipher list for TLS 1.2 and older (TLS 1.3 keeps its defaults). */
  ciphers: string;
  /** Lowest protocol version accepted; the highest is always TLS 1.3. */
  minVersion: SecureVersion;
}

export type TlsPresetName = "advancedPlus" | "advanced" | "broad" | "widest" | "legacy";

/** ECDHE suites of the OWASP classes: AES-GCM (A+), AES-CBC with SHA-2 (A), AES-CBC with SHA-1 (B). */
const ECDHE_GCM = [
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
];
const ECDHE_SHA2 = [
  "ECDHE-ECDSA-AES256-SHA384",
  "ECDHE-RSA-AES256-SHA384",
  "ECDHE-ECDSA-AES128-SHA256",
  "ECDHE-RSA-AES128-SHA256",
];
const ECDHE_SHA1 = [
  "ECDHE-ECDSA-AES256-SHA",
  "ECDHE-RSA-AES256-SHA",
  "ECDHE-ECDSA-AES128-SHA",
  "ECDHE-RSA-AES128-SHA",
];
const DHE_GCM = ["DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-AES128-GCM-SHA256"];
const DHE_SHA2 = ["DHE-RSA-AES256-SHA256", "DHE-RSA-AES128-SHA256"];
const DHE_SHA1 = ["DHE-RSA-AES256-SHA", "DHE-RSA-AES128-SHA"];
/** RSA key exchange (no forward secrecy), OWASP C. */
const RSA_KX = [
  "AES256-GCM-SHA384",
  "AES128-GCM-SHA256",
  "AES256-SHA256",
  "AES128-SHA256",
  "AES256-SHA",
  "AES128-SHA",
];

const ADVANCED_PLUS = [...ECDHE_GCM, ...DHE_GCM].join(":");
const ADVANCED = [...ECDHE_GCM, ...ECDHE_SHA2, ...DHE_GCM, ...DHE_SHA2].join(":");
const BROAD = [...ECDHE_GCM, ...ECDHE_SHA2, ...ECDHE_SHA1, ...DHE_GCM, ...DHE_SHA2, ...DHE_SHA1].join(":");
const WIDEST = `${BROAD}:${RSA_KX.join(":")}`;
const LEGACY = `${WIDEST}:DES-CBC3-SHA`;

/**
 * The key exchange groups, for TLS 1.3 and for ECDHE in TLS 1.2, best first: X25519, P-256, P-384.
 * Not OpenSSL 3's default list, which also lets a TLS 1.3 client choose the finite-field groups
 * ffdhe2048 to ffdhe8192: each handshake then costs the server a modular exponentiation whose size the
 * client picks, the "D(HE)at" attack (measured on node 20: a whole TLS 1.3 handshake with an RSA 2048
 * certificate took about 120 ms of server CPU with ffdhe8192, against about 8 ms with X25519).
 */
export const TLS_GROUPS = "X25519:P-256:P-384";

/**
 * DH parameters for the DHE suites: RFC 7919's ffdhe2048 (the group TLS 1.3 also names), as `openssl
 * genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048` writes it. Node's `dhparam: "auto"` would
 * let OpenSSL 3.0 choose by the certificate's key size, which for an RSA 2048 key is RFC 3526's group 14
 * (measured: the ServerKeyExchange prime was that group's).
 */
export const FFDHE2048 = `-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
`;

/** The presets; `advancedPlus` is the default. */
export const TLS_PRESETS: Readonly<Record<TlsPresetName, Readonly<TlsPreset>>> = Object.freeze({
  /** OWASP A+ (seed: TLS_CIPHERS_ADVANCED_PLUS, TLS_METHODS_ADVANCED). */
  advancedPlus: Object.freeze({ ciphers: ADVANCED_PLUS, minVersion: "TLSv1.2" }),
  /** OWASP A (seed: TLS_CIPHERS_ADVANCED, TLS_METHODS_ADVANCED). */
  advanced: Object.freeze({ ciphers: ADVANCED, minVersion: "TLSv1.2" }),
  /** OWASP B, broad compatibility (seed: TLS_CIPHERS_BROAD_COMP, TLS_METHODS_ADVANCED). */
  broad: Object.freeze({ ciphers: BROAD, minVersion: "TLSv1.2" }),
  /** OWASP C, widest compatibility (seed: TLS_CIPHERS_WIDEST_COMP, TLS_METHODS_LEGACY), security level 0. */
  widest: Object.freeze({ ciphers: `${WIDEST}:@SECLEVEL=0`, minVersion: "TLSv1.1" }),
  /** OWASP C-, legacy (seed: TLS_CIPHERS_LEGACY, TLS_METHODS_LEGACY), security level 0: `widest` and 3DES where OpenSSL has it. */
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
