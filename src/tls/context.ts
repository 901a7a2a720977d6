/**
 * The TLS context of a server: the certificate (from files, or generated in memory for testing), the
 * cipher preset, certificates per hostname by SNI, client certificates on request, and reloading
 * without a restart. The active context is exposed, as the seed exposes `ssl_context`.
 */
import { constants, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import tls from "node:tls";
import { generateSelfSignedCertificate, LOOPBACK_CN, loadCertificate } from "./certificates.js";
import { FFDHE2048, resolveTlsSettings, TLS_GROUPS, type TlsPreset } from "./presets.js";

export type TlsLogger = (severity: "info" | "warn", message: string) => void;

export interface TlsContextOptions {
  /** PEM certificate chain, server certificate first (tlsCertPath); give it with keyPath, or neither. */
  certPath?: string;
  /** PEM private key of that certificate (tlsKeyPath). */
  keyPath?: string;
  /** CN of a generated certificate (tlsCertCn); default "localhost.local" (see deriveCertificateNames). */
  cn?: string;
  /** Further subjectAltNames of a generated certificate (tlsCertSan). */
  san?: readonly string[];
  /** Validity of a generated certificate in days (default 90). */
  days?: number;
  /** Preset name (tlsPreset), default "advancedPlus". */
  preset?: string;
  /** Custom OpenSSL cipher string replacing the preset's (tlsCiphers). */
  ciphers?: string;
  /** Custom lowest protocol version replacing the preset's (tlsMinVersion). */
  minVersion?: string;
  /**
   * Ask clients for a certificate. Default: true when `caPath` is given. Without `caPath` the
   * certificate is only recorded (see describe()); it is never required.
   */
  requestCert?: boolean;
  /** PEM file of the CAs that client certificates are verified against. */
  caPath?: string;
  /**
   * Refuse a client whose certificate is missing or does not verify against `caPath`. Default: true
   * when `caPath` is given, false otherwise (a certificate only recorded is never a reason to refuse).
   */
  rejectUnauthorized?: boolean;
  /** Certificates for other hostnames, chosen by SNI ("mail.example.com" or "*.example.com"). */
  sniCertificates?: readonly { hostname: string; certPath: string; keyPath: string }[];
  /** Receives the "for testing only" warning and reload notices. */
  logger?: TlsLogger;
}

/** What a connection's TLS looks like, for hooks and a `Received:` header. */
export interface TlsSessionInfo {
  /** "TLSv1.3", "TLSv1.2"... */
  protocol: string;
  /** OpenSSL cipher name, e.g. "TLS_AES_256_GCM_SHA384" or "ECDHE-RSA-AES128-GCM-SHA256". */
  cipher: string;
  /** IANA name of the cipher. */
  cipherStandardName: string;
  /** Hostname the client asked for by SNI, if any. */
  servername: string | undefined;
  /** The client's certificate, when one was requested and sent. */
  peerCertificate: X509Certificate | undefined;
  /** True when the client's certificate verified against `caPath` (never true without a CA file). */
  verified: boolean;
  /** Why it did not verify (an OpenSSL code such as "UNABLE_TO_VERIFY_LEAF_SIGNATURE"), if it did not. */
  verifyError: string | undefined;
}

interface CertificateState {
  context: tls.SecureContext;
  cert: string;
  key: string;
  x509: X509Certificate;
  generated: boolean;
}

interface SniEntry {
  certPath: string;
  keyPath: string;
  state: CertificateState;
}

/** Everything a reload swaps at once. */
interface Generation {
  main: CertificateState;
  sni: Map<string, SniEntry>;
  ca: string | undefined;
}

const SNI_PATTERN = /^(\*\.)?[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*$/;

function normalizeSniPattern(hostname: string): string {
  const pattern = hostname.trim().toLowerCase().replace(/\.$/, "");
  if (!SNI_PATTERN.test(pattern)) {
    throw new Error(
      `Invalid SNI hostname ${JSON.stringify(hostname)}: give a hostname such as "mail.example.com" or a wildcard such as "*.example.com".`,
    );
  }
  return pattern;
}

export class TlsContextProvider {
  readonly settings: Readonly<TlsPreset>;
  readonly requestCert: boolean;
  readonly rejectUnauthorized: boolean;
  private readonly options: TlsContextOptions;
  private generation: Generation;
  /** Serializes reload() and SNI changes, so a slower earlier one never overwrites a later one. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(options: TlsContextOptions, settings: TlsPreset, generation: Generation) {
    this.options = options;
    this.settings = settings;
    this.generation = generation;
    this.requestCert = options.requestCert ?? options.caPath !== undefined;
    this.rejectUnauthorized =
      this.requestCert && (options.rejectUnauthorized ?? options.caPath !== undefined);
  }

  /**
   * Builds the contexts; throws one sentence for any invalid option or unusable file, so that the
   * server's start() fails with it.
   */
  static async create(options: TlsContextOptions = {}): Promise<TlsContextProvider> {
    const settings = resolveTlsSettings(options);
    if ((options.certPath === undefined) !== (options.keyPath === undefined)) {
      throw new Error(
        `Give both tlsCertPath and tlsKeyPath, or neither for a generated test certificate (only ${options.certPath === undefined ? "tlsKeyPath" : "tlsCertPath"} was given).`,
      );
    }
    if (options.caPath !== undefined && options.requestCert === false) {
      throw new Error(
        "A CA file for client certificates (tlsCaPath) needs tlsRequestCert, which was set to false.",
      );
    }
    const generation = await TlsContextProvider.build(options, settings, options.sniCertificates ?? []);
    const provider = new TlsContextProvider(options, settings, generation);
    provider.warnIfGenerated();
    return provider;
  }

  /** The context new connections get when no SNI certificate matches (the seed's `ssl_context`). */
  get activeContext(): tls.SecureContext {
    return this.generation.main.context;
  }

  /** The active server certificate (the seed's `ssl_context.cert`). */
  get certificate(): X509Certificate {
    return this.generation.main.x509;
  }

  /** The active certificate chain in PEM (e.g. for a test client's `ca`). */
  get certificatePem(): string {
    return this.generation.main.cert;
  }

  /** True when the active certificate was generated in memory (for testing only). */
  get generated(): boolean {
    return this.generation.main.generated;
  }

  /** The SNI hostname patterns with their certificates. */
  get sniCertificates(): Map<string, X509Certificate> {
    return new Map([...this.generation.sni].map(([pattern, entry]) => [pattern, entry.state.x509]));
  }

  /**
   * For tls.createServer / new tls.TLSSocket: picks the certificate for the requested hostname (exact
   * name first, then "*.parent"), else the active one; always the newest after a reload.
   */
  readonly SNICallback = (
    servername: string,
    callback: (error: Error | null, context?: tls.SecureContext) => void,
  ) => {
    callback(null, this.contextFor(servername));
  };

  /** The context for a hostname, as SNICallback chooses it. */
  contextFor(servername: string | undefined): tls.SecureContext {
    const { sni, main } = this.generation;
    if (servername) {
      const name = servername.toLowerCase().replace(/\.$/, "");
      const exact = sni.get(name);
      if (exact) return exact.state.context;
      const dot = name.indexOf(".");
      const wildcard = dot > 0 ? sni.get(`*${name.slice(dot)}`) : undefined;
      if (wildcard) return wildcard.state.context;
    }
    return main.context;
  }

  /** The options for createSecureContext / tls.createServer that build the active context. */
  contextOptions(): tls.SecureContextOptions {
    return TlsContextProvider.secureContextOptions(this.settings, this.generation.main, this.generation.ca);
  }

  /**
   * Options for `new tls.TLSSocket(socket, { isServer: true, ...provider.socketOptions() })`, using
   * the shared active context. Note: a standalone server TLSSocket does not set `authorized`; use
   * upgradeToTls(), which handles client certificates, rather than this when requestCert is on.
   */
  socketOptions(): tls.TLSSocketOptions {
    return {
      secureContext: this.activeContext,
      SNICallback: this.SNICallback,
      requestCert: this.requestCert,
      rejectUnauthorized: this.rejectUnauthorized,
    };
  }

  /**
   * Options for tls.createServer() (an implicit-TLS listener). Such a server keeps the context it
   * was built with for clients that send no SNI: after reload() call `server.setSecureContext(
   * provider.contextOptions())`, or rather accept on a net.Server and call upgradeToTls().
   */
  serverOptions(): tls.TlsOptions {
    return {
      ...this.contextOptions(),
      SNICallback: this.SNICallback,
      requestCert: this.requestCert,
      rejectUnauthorized: this.rejectUnauthorized,
    };
  }

  /** Adds (or replaces) the certificate for a hostname pattern; throws, changing nothing, if it is unusable. */
  async addSniCertificate(hostname: string, certPath: string, keyPath: string): Promise<void> {
    const pattern = normalizeSniPattern(hostname);
    return this.serialize(async () => {
      const state = await TlsContextProvider.loadState(certPath, keyPath, this.settings, this.generation.ca);
      const sni = new Map(this.generation.sni).set(pattern, { certPath, keyPath, state });
      this.generation = { ...this.generation, sni };
    });
  }

  /** Removes the certificate for a hostname pattern; true if there was one. */
  async removeSniCertificate(hostname: string): Promise<boolean> {
    const pattern = normalizeSniPattern(hostname);
    return this.serialize(async () => {
      const sni = new Map(this.generation.sni);
      const removed = sni.delete(pattern);
      this.generation = { ...this.generation, sni };
      return removed;
    });
  }

  /**
   * Reads every certificate, key and CA file again (a generated certificate is generated anew) and
   * swaps them all at once: connections from then on get the new ones, open ones keep theirs. If
   * anything fails, nothing changes and the promise rejects with the reason.
   */
  reload(): Promise<void> {
    return this.serialize(async () => {
      const sni = [...this.generation.sni].map(([hostname, entry]) => ({ hostname, ...entry }));
      let generation: Generation;
      try {
        generation = await TlsContextProvider.build(this.options, this.settings, sni);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        throw new Error(
          `Reloading the TLS certificates failed, so the previous ones stay in use: ${reason}`,
          {
            cause: error,
          },
        );
      }
      this.generation = generation;
      this.warnIfGenerated();
      const { x509 } = generation.main;
      this.options.logger?.(
        "info",
        `TLS: certificates reloaded; active certificate serial ${x509.serialNumber}, valid until ${new Date(x509.validTo).toISOString()}.`,
      );
    });
  }

  /** The TLS details of a secured connection, with the client's certificate when one was requested. */
  describe(socket: tls.TLSSocket): TlsSessionInfo {
    const cipher = socket.getCipher();
    const peer = this.requestCert ? socket.getPeerX509Certificate() : undefined;
    const withCa = this.generation.ca !== undefined;
    const verified = withCa && peer !== undefined && socket.authorized === true;
    let verifyError: string | undefined;
    if (peer === undefined) verifyError = this.requestCert ? "NO_PEER_CERTIFICATE" : undefined;
    else if (!withCa) verifyError = "NO_CA_CONFIGURED";
    else if (!verified) verifyError = String(socket.authorizationError ?? "UNVERIFIED");
    return {
      protocol: socket.getProtocol() ?? "unknown",
      cipher: cipher?.name ?? "unknown",
      cipherStandardName: cipher?.standardName ?? "unknown",
      servername: typeof socket.servername === "string" ? socket.servername : undefined,
      peerCertificate: peer,
      verified,
      verifyError,
    };
  }

  /** The warning text logged when the active certificate was generated, else undefined. */
  get warning(): string | undefined {
    const { generated, x509 } = this.generation.main;
    if (!generated) return undefined;
    return `TLS: no tlsCertPath/tlsKeyPath given, so a self-signed certificate was generated in memory (${x509.subject.replace(/\n/g, ", ")}, ${x509.subjectAltName}, valid until ${new Date(x509.validTo).toISOString()}); it is for testing only: clients cannot verify it, so give a real certificate in production.`;
  }

  private warnIfGenerated(): void {
    const warning = this.warning;
    if (warning !== undefined) this.options.logger?.("warn", warning);
  }

  private serialize<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private static secureContextOptions(
    settings: TlsPreset,
    state: { cert: string; key: string },
    ca: string | undefined,
  ): tls.SecureContextOptions {
    return {
      cert: state.cert,
      key: state.key,
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
    };
  }

  private static makeState(
    settings: TlsPreset,
    pem: { cert: string; key: string },
    x509: X509Certificate,
    ca: string | undefined,
    generated: boolean,
  ): CertificateState {
    const context = tls.createSecureContext(TlsContextProvider.secureContextOptions(settings, pem, ca));
    return { context, cert: pem.cert, key: pem.key, x509, generated };
  }

  private static async loadState(
    certPath: string,
    keyPath: string,
    settings: TlsPreset,
    ca: string | undefined,
  ): Promise<CertificateState> {
    const loaded = await loadCertificate(certPath, keyPath);
    return TlsContextProvider.makeState(settings, loaded, loaded.x509, ca, false);
  }

  private static async build(
    options: TlsContextOptions,
    settings: TlsPreset,
    sniList: readonly { hostname: string; certPath: string; keyPath: string }[],
  ): Promise<Generation> {
    const ca = options.caPath === undefined ? undefined : await TlsContextProvider.readCa(options.caPath);
    let main: CertificateState;
    if (options.certPath !== undefined && options.keyPath !== undefined) {
      main = await TlsContextProvider.loadState(options.certPath, options.keyPath, settings, ca);
    } else {
      const cn = options.cn?.trim() || LOOPBACK_CN;
      const pem = await generateSelfSignedCertificate({
        cn,
        san: options.san ?? [],
        days: options.days ?? 90,
      });
      main = TlsContextProvider.makeState(settings, pem, new X509Certificate(pem.cert), ca, true);
    }
    const sni = new Map<string, SniEntry>();
    for (const { hostname, certPath, keyPath } of sniList) {
      const state = await TlsContextProvider.loadState(certPath, keyPath, settings, ca);
      sni.set(normalizeSniPattern(hostname), { certPath, keyPath, state });
    }
    return { main, sni, ca };
  }

  private static async readCa(caPath: string): Promise<string> {
    let text: string;
    try {
      text = await readFile(caPath, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      throw new Error(
        `Cannot read the CA file for client certificates "${caPath}" (${code}): check tlsCaPath and the file's permissions.`,
        { cause: error },
      );
    }
    if (!text.includes("-----BEGIN CERTIFICATE-----")) {
      throw new Error(
        `The CA file for client certificates "${caPath}" holds no PEM certificate ("-----BEGIN CERTIFICATE-----"): give the issuing CA certificates in PEM.`,
      );
    }
    return text;
  }
}
