/**
 * Where a provider's certificate, key and client-certificate CAs come from: files (tlsCertPath,
 * tlsKeyPath, tlsCaPath), memory (tlsCert, tlsKey, tlsCa: PEM strings or Buffers), a context made by
 * the caller (tlsSecureContext), or a certificate generated for testing; and the one check that
 * refuses contradictory combinations with a sentence naming the options.
 */
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import type tls from "node:tls";
import {
  checkCertificate,
  generateSelfSignedCertificate,
  LOOPBACK_CN,
  loadCertificate,
  memoryOrigin,
} from "./certificates.js";

/** PEM text, as a string or as the bytes of a file read by the caller. */
export type PemInput = string | Buffer;

/** Chooses the context for the name a client asks for (Node's SNICallback). */
export type SniCallback = (
  servername: string,
  callback: (error: Error | null, context?: tls.SecureContext) => void,
) => void;

/** The options that say where the material comes from (a part of TlsContextOptions). */
export interface TlsMaterialOptions {
  /** PEM certificate chain file, server certificate first (tlsCertPath); give it with keyPath, or neither. */
  certPath?: string;
  /** PEM private key file of that certificate (tlsKeyPath). */
  keyPath?: string;
  /** PEM certificate chain in memory, server certificate first (tlsCert); give it with keyPem. */
  certPem?: PemInput;
  /** PEM private key in memory (tlsKey). */
  keyPem?: PemInput;
  /** CN of a generated certificate (tlsCertCn); default "localhost.local" (see deriveCertificateNames). */
  cn?: string;
  /** Further subjectAltNames of a generated certificate (tlsCertSan). */
  san?: readonly string[];
  /** Validity of a generated certificate in days (default 90). */
  days?: number;
  /** PEM file of the CAs that client certificates are verified against (tlsCaPath). */
  caPath?: string;
  /** Those CAs in memory (tlsCa): PEM text, or a list of PEM texts. */
  caPem?: PemInput | readonly PemInput[];
  /**
   * A context made by the caller (tlsSecureContext), served as it is: its certificate, ciphers and
   * session-ticket keys are its own, so no option that makes a context may come with it.
   */
  secureContext?: tls.SecureContext;
  /** Chooses a context by SNI before the provider's own SNI certificates (tlsSniCallback). */
  sniCallback?: SniCallback;
}

/** The main certificate: its PEM and parsed form, or the context given ready-made. */
export type MainCertificate =
  | { cert: string; key: string; x509: X509Certificate; generated: boolean }
  | { context: tls.SecureContext };

/** Option names as the server's options spell them, for the sentences below. */
const NAMES = {
  certPath: "tlsCertPath",
  keyPath: "tlsKeyPath",
  certPem: "tlsCert",
  keyPem: "tlsKey",
  caPath: "tlsCaPath",
  caPem: "tlsCa",
  cn: "tlsCertCn",
  san: "tlsCertSan",
  secureContext: "tlsSecureContext",
} as const;

/**
 * Refuses what cannot be served together: one thing given twice (as a file and in memory), a
 * certificate without its key, or a ready-made context with anything that would make a context.
 * `extra` names further options given that a ready-made context excludes (the server's tlsCiphers...).
 */
export function checkTlsMaterial(
  options: TlsMaterialOptions & { requestCert?: boolean },
  extra: readonly string[] = [],
): void {
  const given = (name: keyof typeof NAMES) => options[name] !== undefined;
  for (const [file, memory] of [
    ["certPath", "certPem"],
    ["keyPath", "keyPem"],
    ["caPath", "caPem"],
  ] as const) {
    if (given(file) && given(memory)) {
      throw new TypeError(
        `Invalid options ${NAMES[file]} and ${NAMES[memory]}: give it as a file or in memory, not both.`,
      );
    }
  }
  if ((given("certPath") || given("keyPath")) && (given("certPem") || given("keyPem"))) {
    throw new TypeError(
      "Invalid options tlsCert/tlsKey and tlsCertPath/tlsKeyPath: give the certificate and its key the same way, both as files or both in memory.",
    );
  }
  if (given("certPath") !== given("keyPath")) {
    throw new TypeError(
      "Invalid options tlsCertPath and tlsKeyPath: give both (certificate and key) or neither.",
    );
  }
  if (given("certPem") !== given("keyPem")) {
    const [present, missing] = given("certPem") ? ["tlsCert", "tlsKey"] : ["tlsKey", "tlsCert"];
    throw new TypeError(
      `Invalid option ${present}: give ${missing} with it (the certificate and its key, both in memory).`,
    );
  }
  for (const name of ["certPem", "keyPem"] as const) {
    const value = options[name];
    if (value !== undefined && !isPem(value)) {
      throw new TypeError(`Invalid option ${NAMES[name]}: it accepts PEM text as a string or a Buffer.`);
    }
  }
  const ca = options.caPem;
  if (ca !== undefined && !(isPem(ca) || (Array.isArray(ca) && ca.length > 0 && ca.every(isPem)))) {
    throw new TypeError(
      "Invalid option tlsCa: it accepts PEM text (a string or a Buffer) or a list of them.",
    );
  }
  if (options.sniCallback !== undefined && typeof options.sniCallback !== "function") {
    throw new TypeError("Invalid option tlsSniCallback: it must be a function (servername, callback).");
  }
  if (options.secureContext === undefined) return;
  if (!isSecureContext(options.secureContext)) {
    throw new TypeError("Invalid option tlsSecureContext: give a context made by tls.createSecureContext().");
  }
  const excluded = [
    ...(["certPath", "keyPath", "certPem", "keyPem", "caPath", "caPem", "cn", "san"] as const)
      .filter(given)
      .map((name) => NAMES[name]),
    ...(options.requestCert ? ["tlsRequestCert"] : []),
    ...extra,
  ];
  if (excluded.length > 0) {
    throw new TypeError(
      `Invalid options tlsSecureContext and ${excluded.join(", ")}: a ready-made context is served as it is (its certificate, ciphers and CAs are its own), and client certificates need a context mailgate makes; give one or the other.`,
    );
  }
}

function isPem(value: unknown): value is PemInput {
  return typeof value === "string" || Buffer.isBuffer(value);
}

function isSecureContext(value: unknown): value is tls.SecureContext {
  return typeof value === "object" && value !== null && "context" in value;
}

function text(value: PemInput): string {
  return typeof value === "string" ? value : value.toString("utf8");
}

/** Reads (or takes, or generates) the main certificate. */
export async function loadMainCertificate(options: TlsMaterialOptions): Promise<MainCertificate> {
  if (options.secureContext !== undefined) return { context: options.secureContext };
  if (options.certPath !== undefined && options.keyPath !== undefined) {
    return { ...(await loadCertificate(options.certPath, options.keyPath)), generated: false };
  }
  if (options.certPem !== undefined && options.keyPem !== undefined) {
    const origin = memoryOrigin("tlsCert", "tlsKey");
    return { ...checkCertificate(text(options.certPem), text(options.keyPem), origin), generated: false };
  }
  const cn = options.cn?.trim() || LOOPBACK_CN;
  const pem = await generateSelfSignedCertificate({ cn, san: options.san ?? [], days: options.days ?? 90 });
  return { ...pem, x509: new X509Certificate(pem.cert), generated: true };
}

/** The CAs client certificates are verified against, in PEM; undefined when none are given. */
export async function loadCa(options: TlsMaterialOptions): Promise<string | undefined> {
  if (options.caPem !== undefined) {
    const pem = (Array.isArray(options.caPem) ? options.caPem : [options.caPem]).map(text).join("\n");
    return checkCaPem(pem, "The CAs given in tlsCa");
  }
  if (options.caPath === undefined) return undefined;
  let pem: string;
  try {
    pem = await readFile(options.caPath, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new Error(
      `Cannot read the CA file for client certificates "${options.caPath}" (${code}): check tlsCaPath and the file's permissions.`,
      { cause: error },
    );
  }
  return checkCaPem(pem, `The CA file for client certificates "${options.caPath}"`);
}

function checkCaPem(pem: string, source: string): string {
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new Error(
      `${source} holds no PEM certificate ("-----BEGIN CERTIFICATE-----"): give the issuing CA certificates in PEM.`,
    );
  }
  return pem;
}
