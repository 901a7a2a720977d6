/**
 * The TLS context of a server: the certificate (from files, or generated in memory for testing), the
 * cipher preset, certificates per hostname by SNI, client certificates on request, reloading without
 * a restart, and the session-ticket key that rotates. The active context is exposed, as the seed
 * exposes `ssl_context`.
 */
import { constants, randomBytes, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import tls from "node:tls";
import type { TlsSessionInfo } from "../protocol/context.js";
import { generateSelfSignedCertificate, LOOPBACK_CN, loadCertificate } from "./certificates.js";
import { FFDHE2048, resolveTlsSettings, TLS_GROUPS, type TlsPreset } from "./presets.js";

export type TlsLogger = (severity: "info" | "warn", message: string) => void;

/** Milliseconds between two session-ticket keys by default: 12 hours. */
export const DEFAULT_TICKET_KEY_ROTATION = 12 * 60 * 60 * 1000;

/** The range a rotation interval may take: a minute (a value in seconds fails) to setInterval's limit. */
export const TICKET_KEY_ROTATION_RANGE = { min: 60_000, max: 2_147_483_647 } as const;

/** Node's session-ticket key: a 16-byte key name, a 16-byte HMAC secret and a 16-byte AES key. */
const TICKET_KEY_BYTES = 48;

/**
 * Where the session-ticket key comes from. A TLS 1.2 ticket carries the session's master secret
 * encrypted under this key, so whoever learns the key can decrypt every TLS 1.2 session whose ticket
 * it made; replacing the key bounds that exposure. Node holds one key per context, so a new key
 * makes the tickets issued before it unusable: their clients do one full handshake and get a new one.
 *
 * The default source (rotatingTicketKeys) is private to one provider. Processes that serve the same
 * clients (workers sharing a listening socket) would give each provider a source that delivers the
 * keys their primary hands out, so that a ticket from one worker resumes on another.
 */
export interface TicketKeySource {
  /**
   * Starts delivering keys: calls `use` with each 48-byte key, the first preferably at once (until
   * then the provider uses a random key of its own). Returns the function that stops the source
   * (clears its timers, unsubscribes); the provider calls it from close(). `use` throws a TypeError
   * for a key that is not 48 bytes long.
   */
  start(use: (key: Buffer) => void): () => void;
}

/** Checks a rotation interval in milliseconds; otherwise throws one sentence naming the option. */
export function validateTicketKeyRotation(value: unknown): number {
  const { min, max } = TICKET_KEY_ROTATION_RANGE;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Invalid tlsTicketKeyRotation ${JSON.stringify(value)}: give the milliseconds between two session-ticket keys, from ${min} (a minute) to ${max} (about 24.8 days).`,
    );
  }
  return value;
}

/** The default source: a random key at once, and a new one every `intervalMs` (a timer that is unref()ed). */
export function rotatingTicketKeys(intervalMs: number = DEFAULT_TICKET_KEY_ROTATION): TicketKeySource {
  const interval = validateTicketKeyRotation(intervalMs);
  return {
    start(use) {
      use(randomBytes(TICKET_KEY_BYTES));
      const timer = setInterval(() => use(randomBytes(TICKET_KEY_BYTES)), interval);
      timer.unref(); // a rotation due never keeps the process alive
      return () => clearInterval(timer);
    },
  };
}

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
  /** Milliseconds between two session-ticket keys (tlsTicketKeyRotation), default 12 hours. */
  ticketKeyRotation?: number;
  /** Where session-ticket keys come from instead of a private rotating key (ticketKeyRotation is then unused). */
  ticketKeySource?: TicketKeySource;
  /** Receives the "for testing only" warning and reload notices. */
  logger?: TlsLogger;
}

/** What a connection's TLS looks like, for hooks and a `Received:` header (defined with the session context). */
export type { TlsSessionInfo };

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
  /** The session-ticket key every context of this generation holds. */
  ticketKey: Buffer;
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

/** A copy of a key a TicketKeySource delivers, checked: Node takes exactly 48 bytes. */
function checkTicketKey(key: Buffer): Buffer {
  if (!Buffer.isBuffer(key) || key.length !== TICKET_KEY_BYTES) {
    throw new TypeError(
      `A session-ticket key must be a Buffer of ${TICKET_KEY_BYTES} bytes (got ${Buffer.isBuffer(key) ? `${key.length} bytes` : typeof key}).`,
    );
  }
  return Buffer.from(key);
}

export class TlsContextProvider {
  readonly settings: Readonly<TlsPreset>;
  readonly requestCert: boolean;
  readonly rejectUnauthorized: boolean;
  private readonly options: TlsContextOptions;
  private generation: Generation;
  /** The newest session-ticket key; the generation's contexts always hold it (see useTicketKey). */
  private ticketKey: Buffer;
  private stopTicketKeys: () => void;
  /** Serializes reload() and SNI changes, so a slower earlier one never overwrites a later one. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    options: TlsContextOptions,
    settings: TlsPreset,
    generation: Generation,
    ticketKey: Buffer,
    stopTicketKeys: () => void,
  ) {
    this.options = options;
    this.settings = settings;
    this.ticketKey = ticketKey;
    this.generation = this.rekeyed(generation); // a key delivered during build() is put in force
    this.stopTicketKeys = stopTicketKeys;
    this.requestCert = options.requestCert ?? options.caPath !== undefined;
    this.rejectUnauthorized =
      this.requestCert && (options.rejectUnauthorized ?? options.caPath !== undefined);
  }

  /**
   * Builds the contexts and starts the session-ticket key source (call close() when done with the
   * provider); throws one sentence for any invalid option or unusable file, so that the server's
   * start() fails with it.
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
    const source = options.ticketKeySource ?? rotatingTicketKeys(options.ticketKeyRotation);
    let provider: TlsContextProvider | undefined;
    let ticketKey: Buffer = randomBytes(TICKET_KEY_BYTES); // until the source delivers one
    const stop = source.start((key) => {
      const checked = checkTicketKey(key);
      if (provider === undefined) ticketKey = checked;
      else provider.useTicketKey(checked);
    });
    try {
      const generation = await TlsContextProvider.build(
        options,
        settings,
        options.sniCertificates ?? [],
        () => ticketKey,
      );
      provider = new TlsContextProvider(options, settings, generation, ticketKey, stop);
    } catch (error) {
      stop();
      throw error;
    }
    provider.warnIfGenerated();
    return provider;
  }

  /**
   * Stops the session-ticket key source (the rotation timer); the server's stop() calls it. The
   * contexts stay usable, with the last key.
   */
  close(): void {
    const stop = this.stopTicketKeys;
    this.stopTicketKeys = () => {};
    stop();
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
    const { main, ca, ticketKey } = this.generation;
    return TlsContextProvider.secureContextOptions(this.settings, main, ca, ticketKey);
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
      const loaded = await loadCertificate(certPath, keyPath);
      const { ca, ticketKey } = this.generation; // read after the await: a rotation may have come
      const state = TlsContextProvider.makeState(this.settings, loaded, loaded.x509, ca, false, ticketKey);
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
        generation = await TlsContextProvider.build(this.options, this.settings, sni, () => this.ticketKey);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        throw new Error(
          `Reloading the TLS certificates failed, so the previous ones stay in use: ${reason}`,
          {
            cause: error,
          },
        );
      }
      this.generation = this.rekeyed(generation);
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

  /**
   * Puts a new session-ticket key in force for the connections from now on: every context (main and
   * SNI) is made again from the certificates in memory with that key. Open connections keep theirs.
   */
  private useTicketKey(key: Buffer): void {
    this.ticketKey = key;
    this.generation = this.rekeyed(this.generation);
  }

  /** `generation` with its contexts holding the newest ticket key (itself if they already do). */
  private rekeyed(generation: Generation): Generation {
    const ticketKey = this.ticketKey;
    if (generation.ticketKey.equals(ticketKey)) return generation;
    const { settings } = this;
    const remake = (state: CertificateState) =>
      TlsContextProvider.makeState(settings, state, state.x509, generation.ca, state.generated, ticketKey);
    const sni = new Map(
      [...generation.sni].map(([pattern, entry]) => [pattern, { ...entry, state: remake(entry.state) }]),
    );
    return { main: remake(generation.main), sni, ca: generation.ca, ticketKey };
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
    ticketKey: Buffer,
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
      ticketKeys: ticketKey,
    };
  }

  private static makeState(
    settings: TlsPreset,
    pem: { cert: string; key: string },
    x509: X509Certificate,
    ca: string | undefined,
    generated: boolean,
    ticketKey: Buffer,
  ): CertificateState {
    const context = tls.createSecureContext(
      TlsContextProvider.secureContextOptions(settings, pem, ca, ticketKey),
    );
    return { context, cert: pem.cert, key: pem.key, x509, generated };
  }

  /**
   * Reads (or generates) every certificate first, then makes all the contexts at once with the ticket
   * key in force at that moment, so that a rotation during the reads cannot leave them with two keys.
   */
  private static async build(
    options: TlsContextOptions,
    settings: TlsPreset,
    sniList: readonly { hostname: string; certPath: string; keyPath: string }[],
    ticketKey: () => Buffer,
  ): Promise<Generation> {
    const ca = options.caPath === undefined ? undefined : await TlsContextProvider.readCa(options.caPath);
    let main: { cert: string; key: string; x509: X509Certificate; generated: boolean };
    if (options.certPath !== undefined && options.keyPath !== undefined) {
      main = { ...(await loadCertificate(options.certPath, options.keyPath)), generated: false };
    } else {
      const cn = options.cn?.trim() || LOOPBACK_CN;
      const pem = await generateSelfSignedCertificate({
        cn,
        san: options.san ?? [],
        days: options.days ?? 90,
      });
      main = { ...pem, x509: new X509Certificate(pem.cert), generated: true };
    }
    const loaded = [];
    for (const { hostname, certPath, keyPath } of sniList) {
      const pattern = normalizeSniPattern(hostname);
      loaded.push({ pattern, certPath, keyPath, pem: await loadCertificate(certPath, keyPath) });
    }
    const key = ticketKey();
    const make = (pem: { cert: string; key: string; x509: X509Certificate }, generated: boolean) =>
      TlsContextProvider.makeState(settings, pem, pem.x509, ca, generated, key);
    const sni = new Map<string, SniEntry>();
    for (const { pattern, certPath, keyPath, pem } of loaded) {
      sni.set(pattern, { certPath, keyPath, state: make(pem, false) });
    }
    return { main: make(main, main.generated), sni, ca, ticketKey: key };
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
