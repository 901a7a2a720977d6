/**
 * The TLS context of a server: the certificate (see material.ts for where it comes from), the cipher
 * preset, certificates per hostname by SNI, client certificates on request, reloading without a
 * restart, and the session-ticket key that rotates. The active context is exposed, as the seed exposes
 * `ssl_context`.
 */
import type { X509Certificate } from "node:crypto";
import type tls from "node:tls";
import type { TlsSessionInfo } from "../protocol/context.js";
import { loadCertificate } from "./certificates.js";
import { checkTlsMaterial, loadCa, loadMainCertificate, type TlsMaterialOptions } from "./material.js";
import { resolveTlsSettings, type TlsPreset } from "./presets.js";
import {
  type CertificateState,
  certificateState,
  rekeyedState,
  secureContextOptions,
} from "./secure-context.js";
import { normalizeSniPattern, type SniCertificateFile, sniEntryFor } from "./sni.js";
import { checkTicketKey, randomTicketKey, rotatingTicketKeys, type TicketKeySource } from "./ticket-keys.js";

// The cluster's primary and workers hand session-ticket keys to their providers.
export { rotatingTicketKeys, type TicketKeySource } from "./ticket-keys.js";

export type TlsLogger = (severity: "info" | "warn", message: string) => void;

export interface TlsContextOptions extends TlsMaterialOptions {
  /** Preset name (tlsPreset), default "advancedPlus". */
  preset?: string;
  /** Custom OpenSSL cipher string replacing the preset's (tlsCiphers). */
  ciphers?: string;
  /** Custom lowest protocol version replacing the preset's (tlsMinVersion). */
  minVersion?: string;
  /**
   * Ask clients for a certificate. Default: true when CAs are given (caPath or caPem). Without them the
   * certificate is only recorded (see describe()); it is never required.
   */
  requestCert?: boolean;
  /**
   * Refuse a client whose certificate is missing or does not verify against the CAs. Default: true
   * when CAs are given, false otherwise (a certificate only recorded is never a reason to refuse).
   */
  rejectUnauthorized?: boolean;
  /** Certificates for other hostnames, chosen by SNI ("mail.example.com" or "*.example.com"). */
  sniCertificates?: readonly SniCertificateFile[];
  /** Milliseconds between two session-ticket keys (tlsTicketKeyRotation), default 12 hours. */
  ticketKeyRotation?: number;
  /** Where session-ticket keys come from instead of a private rotating key (ticketKeyRotation is then unused). */
  ticketKeySource?: TicketKeySource;
  /** Receives the "for testing only" warning and reload notices. */
  logger?: TlsLogger;
}

/** What a connection's TLS looks like, for hooks and a `Received:` header (defined with the session context). */
export type { TlsSessionInfo };

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
    const withCa = options.caPath !== undefined || options.caPem !== undefined;
    this.requestCert = options.requestCert ?? withCa;
    this.rejectUnauthorized = this.requestCert && (options.rejectUnauthorized ?? withCa);
  }

  /**
   * Builds the contexts and starts the session-ticket key source (call close() when done with the
   * provider); throws one sentence for any invalid option or unusable file, so that the server's
   * start() fails with it.
   */
  static async create(options: TlsContextOptions = {}): Promise<TlsContextProvider> {
    checkTlsMaterial(options);
    const settings = resolveTlsSettings(options);
    if ((options.caPath !== undefined || options.caPem !== undefined) && options.requestCert === false) {
      throw new Error(
        `${options.caPem === undefined ? "A CA file for client certificates (tlsCaPath)" : "A CA list for client certificates (tlsCa)"} needs tlsRequestCert, which was set to false.`,
      );
    }
    const source = options.ticketKeySource ?? rotatingTicketKeys(options.ticketKeyRotation);
    let provider: TlsContextProvider | undefined;
    let ticketKey: Buffer = randomTicketKey(); // until the source delivers one
    const stop = source.start((key) => {
      const checked = checkTicketKey(key);
      if (provider === undefined) ticketKey = checked;
      else provider.useTicketKey(checked);
    });
    try {
      const sni = (options.sniCertificates ?? []).map((entry) => ({
        ...entry,
        hostname: normalizeSniPattern(entry.hostname),
      }));
      const generation = await TlsContextProvider.build(options, settings, sni, () => ticketKey);
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

  /** The active server certificate (the seed's `ssl_context.cert`); undefined for a tlsSecureContext. */
  get certificate(): X509Certificate | undefined {
    return this.generation.main.x509;
  }

  /** The active certificate chain in PEM (e.g. for a test client's `ca`); undefined for a tlsSecureContext. */
  get certificatePem(): string | undefined {
    return this.generation.main.pem?.cert;
  }

  /** True when the active certificate was generated in memory (for testing only). */
  get generated(): boolean {
    return this.generation.main.generated;
  }

  /** The SNI hostname patterns with their certificates. */
  get sniCertificates(): Map<string, X509Certificate> {
    return new Map(
      [...this.generation.sni].map(([pattern, entry]) => [pattern, entry.state.x509 as X509Certificate]),
    );
  }

  /**
   * For tls.createServer / new tls.TLSSocket: the context the tlsSniCallback option chooses, if any;
   * else the certificate for the requested hostname (exact name first, then "*.parent"), else the
   * active one; always the newest after a reload.
   */
  readonly SNICallback = (
    servername: string,
    callback: (error: Error | null, context?: tls.SecureContext) => void,
  ) => {
    const chooser = this.options.sniCallback;
    if (chooser === undefined) {
      callback(null, this.contextFor(servername));
      return;
    }
    chooser(servername, (error, context) => {
      if (error) callback(error);
      else callback(null, context ?? this.contextFor(servername));
    });
  };

  /** The context for a hostname among the provider's own certificates (SNI entries, else the active one). */
  contextFor(servername: string | undefined): tls.SecureContext {
    const { sni, main } = this.generation;
    const entry = servername ? sniEntryFor(sni, servername) : undefined;
    return (entry?.state ?? main).context;
  }

  /** The options for createSecureContext / tls.createServer that build the active context. */
  contextOptions(): tls.SecureContextOptions {
    const { main, ca, ticketKey } = this.generation;
    if (main.pem === undefined) {
      throw new Error(
        "The active context was given ready-made (tlsSecureContext): there are no options to make it again; use activeContext.",
      );
    }
    return secureContextOptions(this.settings, main.pem, ca, ticketKey);
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
      const state = certificateState(this.settings, loaded, loaded.x509, ca, false, ticketKey);
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
   * anything fails, nothing changes and the promise rejects with the reason. Material given in memory
   * (tlsCert, tlsKey, tlsCa) and a tlsSecureContext have no file to read: they stay as given (checked
   * and made into contexts again), and the notice says so.
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
      this.options.logger?.("info", `TLS: certificates reloaded; ${this.describeActive()}.`);
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
    if (!generated || x509 === undefined) return undefined;
    return `TLS: no tlsCertPath/tlsKeyPath given, so a self-signed certificate was generated in memory (${x509.subject.replace(/\n/g, ", ")}, ${x509.subjectAltName}, valid until ${new Date(x509.validTo).toISOString()}); it is for testing only: clients cannot verify it, so give a real certificate in production.`;
  }

  private warnIfGenerated(): void {
    const warning = this.warning;
    if (warning !== undefined) this.options.logger?.("warn", warning);
  }

  /** The active certificate and where it came from, for the reload notice. */
  private describeActive(): string {
    const { x509 } = this.generation.main;
    if (x509 === undefined) return "the context given in tlsSecureContext is kept as it is";
    const certificate = `active certificate serial ${x509.serialNumber}, valid until ${new Date(x509.validTo).toISOString()}`;
    return this.options.certPem === undefined
      ? certificate
      : `${certificate} (given in tlsCert: kept as it is)`;
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
    const { ca } = generation;
    const sni = new Map(
      [...generation.sni].map(([pattern, entry]) => [
        pattern,
        { ...entry, state: rekeyedState(settings, entry.state, ca, ticketKey) },
      ]),
    );
    return { main: rekeyedState(settings, generation.main, ca, ticketKey), sni, ca, ticketKey };
  }

  private serialize<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Reads (or takes, or generates) every certificate first, then makes all the contexts at once with
   * the ticket key in force at that moment, so that a rotation during the reads cannot leave them with
   * two keys.
   */
  private static async build(
    options: TlsContextOptions,
    settings: TlsPreset,
    sniList: readonly SniCertificateFile[],
    ticketKey: () => Buffer,
  ): Promise<Generation> {
    const ca = await loadCa(options);
    const main = await loadMainCertificate(options);
    const loaded = [];
    for (const { hostname, certPath, keyPath } of sniList) {
      loaded.push({ hostname, certPath, keyPath, pem: await loadCertificate(certPath, keyPath) });
    }
    const key = ticketKey();
    const sni = new Map<string, SniEntry>();
    for (const { hostname, certPath, keyPath, pem } of loaded) {
      sni.set(hostname, {
        certPath,
        keyPath,
        state: certificateState(settings, pem, pem.x509, ca, false, key),
      });
    }
    const state =
      "context" in main
        ? { context: main.context, pem: undefined, x509: undefined, generated: false }
        : certificateState(settings, main, main.x509, ca, main.generated, key);
    return { main: state, sni, ca, ticketKey: key };
  }
}
