/**
 * SmtpServer: listeners, connection and processing limits, lifecycle, and the event hooks a user
 * overrides (by subclassing, as the seed does, or by passing functions in the options: one code path).
 */
import { promises as dns } from "node:dns";
import type { BlockList, Socket } from "node:net";
import type { Readable } from "node:stream";
import { TLSSocket } from "node:tls";
import type { EsmtpParams } from "../protocol/commands.js";
import { createContext, type SessionContext } from "../protocol/context.js";
import { SmtpError } from "../protocol/errors.js";
import type { MessageOutcome, SessionHooks, Severity, SmtpServerHooks } from "../protocol/hooks.js";
import type { Awaitable } from "../protocol/maybe-async.js";
import type { Observer, ServerObserver } from "../protocol/observer.js";
import type { ProxyInfo } from "../protocol/proxy.js";
import type { SessionConfig } from "../protocol/session.js";
import type { SaslCredentials, SaslMechanismName } from "../sasl/mechanism.js";
import { deriveCertificateNames } from "../tls/certificates.js";
import { type TicketKeySource, TlsContextProvider } from "../tls/context.js";
import { resolveTlsSettings } from "../tls/presets.js";
import { upgradeToTls } from "../tls/upgrade.js";
import { type AddressLimiter, authFailuresByAddress } from "./address-limiter.js";
import { formatAddress, parseHostItems } from "./addresses.js";
import { Admission, type AdmissionTicket, type CountedElsewhere } from "./admission.js";
import { clientAddress, unnamedClientKey } from "./client-key.js";
import { compileSessionConfig, parseSniCertificates, rejectUnknownOptions } from "./compiled-settings.js";
import { Connection, type ConnectionOptions } from "./connection.js";
import { bindHooks, HOOK_NAMES } from "./hook-binding.js";
import {
  type ListenerRole,
  type Listeners,
  type ListenPlan,
  listenPlan,
  openListeners,
} from "./listeners.js";
import { defaultLogger, severityEnabled, writeLog } from "./logger.js";
import { completeObserver } from "./observer.js";
import { type Logger, resolveSettings, type ServerSettings } from "./options.js";
import { addressList, isTrusted, readProxyHeader, replayingSocket } from "./proxy-reader.js";
import { Refusals } from "./refusals.js";
import { boundedLookup } from "./reverse-dns.js";

export type SmtpServerOptions = Omit<Partial<ServerSettings>, "ports" | "hosts"> &
  SmtpServerHooks & {
    /** "2525", 2525, "2525, 3535:4545" or a list of such items. */
    ports?: string | number | readonly (string | number)[];
    /** "127.0.0.1, ::1", "*" or a list of hosts. */
    hosts?: string | readonly string[];
    logger?: Logger;
    /**
     * Where AUTH failures per client address are counted (maxAuthFailuresPerIp, authFailureWindow): by
     * default in this process's memory; a RedisAddressLimiter shares the counts among instances.
     */
    authFailureLimiter?: AddressLimiter;
    /** Told of connections, commands, replies, messages and failures (metrics); see ServerObserver. */
    observer?: ServerObserver;
  };

export interface StopOptions {
  /** Let running transactions finish (default true); idle sessions get 421 at once either way. */
  gracefully?: boolean;
  /** Milliseconds to wait for them before the rest get 421 (default 10000). */
  timeout?: number;
}

/** How start() serves; the defaults are a server of its own. runWorkers starts its workers' servers so. */
export interface StartOptions {
  /**
   * Bind the listeners of ports, hosts and socketPath (default true). With false nothing is bound: the
   * connections come through serveSocket(), accepted by another process (a primary) or by the caller.
   */
  listen?: boolean;
  /** Where session-ticket keys come from instead of a private rotating key (a primary's, for all workers). */
  ticketKeySource?: TicketKeySource;
  /**
   * Counts AUTH failures per client address (maxAuthFailuresPerIp) instead of this server's memory (a
   * primary's, for all workers); ignored when the options gave an authFailureLimiter (a RedisAddressLimiter
   * spans instances, and so workers too).
   */
  authFailureLimiter?: AddressLimiter;
}

export class SmtpServer implements SmtpServerHooks {
  readonly settings: Readonly<ServerSettings>;
  readonly logger: Logger;
  /** Set once onLogging has thrown: see log(). */
  private loggingFailed = false;
  private sessionConfig: SessionConfig;
  /** The options gave the AUTH failure limiter: start() keeps it. */
  private readonly ownAuthFailureLimiter: boolean;
  private readonly sessionHooks: SessionHooks;
  /** The `observer` option, completed; undefined without one (then no event costs more than a check). */
  private readonly observer: Observer | undefined;
  /** Shared by every connection: built once, not per connection. */
  private readonly connectionOptions: ConnectionOptions;
  /** The 220 greeting and the first line of the HELO/EHLO answer each context starts with. */
  private readonly greeting: string;
  private readonly heloGreeting: string;
  /** The listeners the settings ask for, and those bound (while started with listen). */
  private readonly plan: ListenPlan;
  private listening: Listeners | null = null;
  private tlsProvider: TlsContextProvider | null = null;
  private readonly trustedProxies: BlockList;
  /** Null when nobody may use XCLIENT and XFORWARD: no address check per connection then. */
  private readonly xclientClients: BlockList | null;
  /** Connections counted against maxConnections and maxConnectionsPerIp. */
  private readonly admission: Admission;
  /** Sockets in their PROXY header or implicit TLS handshake: not yet connections. */
  private readonly preparing = new Set<Socket>();
  /** Sockets refused with a 421, waiting briefly for their client to hang up. */
  private readonly refusals: Refusals;
  /** Connections whose session is over and whose socket waits for the client to hang up. */
  private lingering = 0;
  private readonly open = new Set<Connection>();
  private readonly waiting: Connection[] = [];
  private active = 0;
  private state: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  private resolver: dns.Resolver | null = null;

  constructor(options: SmtpServerOptions = {}) {
    const given = options as Record<string, unknown>;
    rejectUnknownOptions(given);
    this.settings = Object.freeze(resolveSettings(options));
    const s0 = this.settings;
    parseSniCertificates(s0.tlsSniCertificates);
    this.plan = listenPlan(s0, given.ports !== undefined || given.hosts !== undefined);
    this.trustedProxies = addressList("proxyTrusted", s0.proxyTrusted);
    const xclientClients = addressList("xclientTrusted", s0.xclientTrusted);
    this.xclientClients = xclientClients.rules.length > 0 ? xclientClients : null;
    resolveTlsSettings({
      preset: s0.tlsPreset,
      ciphers: s0.tlsCiphers || undefined,
      minVersion: s0.tlsMinVersion || undefined,
    });
    if ((s0.tlsCertPath === "") !== (s0.tlsKeyPath === "")) {
      throw new TypeError(
        "Invalid options tlsCertPath and tlsKeyPath: give both (certificate and key) or neither.",
      );
    }
    if (
      s0.authMode !== "forbidden" &&
      s0.tlsMode === "forbidden" &&
      this.plan.implicitTlsPorts.size === 0 &&
      !s0.authOverPlaintext
    ) {
      throw new TypeError(
        "Invalid option authMode: AUTH needs TLS (tlsMode optional or required, or tlsPorts), or authOverPlaintext enabled to allow it without encryption.",
      );
    }
    for (const name of HOOK_NAMES) {
      const hook = given[name];
      if (hook === undefined) continue;
      if (typeof hook !== "function") throw new TypeError(`Invalid option ${name}: it must be a function.`);
      (this as Record<string, unknown>)[name] = hook;
    }
    if (options.logger !== undefined) {
      const logger = options.logger as unknown as Record<string, unknown>;
      for (const method of ["debug", "info", "warn", "error"]) {
        if (typeof logger?.[method] !== "function") {
          throw new TypeError(
            `Invalid option logger: it needs debug, info, warn and error methods (${method} is missing).`,
          );
        }
      }
    }
    this.logger = options.logger ?? defaultLogger;
    const s = this.settings;
    if (
      options.authFailureLimiter !== undefined &&
      typeof options.authFailureLimiter?.record !== "function"
    ) {
      throw new TypeError("Invalid option authFailureLimiter: it needs isBlocked and record methods.");
    }
    this.sessionConfig = compileSessionConfig(s, options.authFailureLimiter);
    this.ownAuthFailureLimiter = options.authFailureLimiter !== undefined;
    this.observer = completeObserver(options.observer);
    this.sessionHooks = bindHooks(
      this,
      (ctx, severity, message, error) => this.log(ctx, severity, message, error),
      this.observer,
    );
    this.connectionOptions = {
      commandTimeout: s.ioCmdTimeout,
      minDataRate: s.minDataRate,
      sessionClosed: (connection) => {
        this.sessionEnded(connection);
        this.linger(connection);
      },
      closed: (connection) => this.release(connection),
    };
    this.admission = new Admission(s.maxConnections, s.maxConnectionsPerIp);
    this.refusals = new Refusals(s.hostname, s.maxConnections, () => this.onIdle?.());
    this.greeting = `${s.hostname} ${s.lmtp ? "LMTP" : "ESMTP"} mailgate ready`;
    this.heloGreeting = `${s.hostname} at your service`;
  }

  // ---- the hooks' defaults (the seed's) ----

  onConnect(_ctx: SessionContext): Awaitable<void> {}
  onDisconnect(_ctx: SessionContext): Awaitable<void> {}
  onHelo(_ctx: SessionContext, _heloData: string): Awaitable<void> {}
  onMailFrom(
    _ctx: SessionContext,
    _address: string,
    _params: EsmtpParams,
  ): Awaitable<string | undefined | void> {}
  onRcptTo(
    _ctx: SessionContext,
    _address: string,
    _params: EsmtpParams,
  ): Awaitable<string | undefined | void> {}
  onVrfy?(ctx: SessionContext, argument: string): Awaitable<string>;
  onExpn?(ctx: SessionContext, argument: string): Awaitable<readonly string[]>;
  onMessageDataStart(_ctx: SessionContext): Awaitable<void> {}
  onMessageDataReceiving(_ctx: SessionContext): Awaitable<void> {}
  onMessageDataHeaders(_ctx: SessionContext): Awaitable<void> {}
  onMessageStream?(ctx: SessionContext, stream: Readable): Awaitable<MessageOutcome>;
  onMessageData(_ctx: SessionContext): Awaitable<MessageOutcome> {}
  onProcessLineUnknown(_ctx: SessionContext, _line: string): Awaitable<void> {}
  /** The seed's default: everyone is denied (535) and the attempt is logged, without the secret. */
  onAuth(
    ctx: SessionContext,
    _authorizationId: string,
    authenticationId: string,
    _secret: string,
    mechanism: SaslMechanismName,
    _credentials: SaslCredentials,
  ): Awaitable<string | undefined | void> {
    this.log(ctx, "debug", `Deny ${JSON.stringify(authenticationId)} (${mechanism}): no onAuth hook`);
    throw SmtpError.code(535);
  }
  onLogging(ctx: SessionContext | null, severity: Severity, message: string, error?: unknown): void {
    if (severityEnabled(severity, this.settings.loggerSeverity))
      writeLog(this.logger, ctx, severity, message, error);
  }

  /**
   * How the server reports its own events: through onLogging, whose failure (a hook or a logger that
   * throws) must never break a session or crash the process. The first failure becomes a process warning
   * (stderr by default); later ones are dropped, so a broken logger cannot flood the output either.
   */
  private log(ctx: SessionContext | null, severity: Severity, message: string, error?: unknown): void {
    try {
      this.onLogging(ctx, severity, message, error);
    } catch (failure) {
      if (this.loggingFailed) return;
      this.loggingFailed = true;
      process.emitWarning(
        `mailgate: onLogging threw (${failure instanceof Error ? failure.message : String(failure)}); events it fails to log are dropped.`,
      );
    }
  }

  // ---- state, as the seed exposes it ----

  /** "ip:port" of every bound listener, and "unix:path" for the socket (after start()). */
  get addresses(): string[] {
    const { bound = [], socketPath = "" } = this.listening ?? {};
    const tcp = bound.map(formatAddress);
    return socketPath === "" ? tcp : [...tcp, `unix:${socketPath}`];
  }

  /** Bound IP addresses after start(), else the configured host items. */
  get hosts(): string[] {
    const bound = this.listening?.bound ?? [];
    if (bound.length === 0) return parseHostItems(this.settings.hosts);
    return [...new Set(bound.map((a) => a.host))];
  }

  /** Bound ports after start() (real ones for port 0), else the configured port items. */
  get ports(): number[] {
    const bound = this.listening?.bound ?? [];
    if (bound.length === 0) return [...this.plan.configuredPorts];
    return [...new Set(bound.map((a) => a.port))];
  }

  /** Open client connections, waiting ones included. */
  get connections(): number {
    return this.open.size;
  }

  /** Sessions being served (holding a processing slot). */
  get processings(): number {
    return this.active;
  }

  get isShuttingDown(): boolean {
    return this.state === "stopping";
  }

  get isStopped(): boolean {
    return this.state === "new" || this.state === "stopped";
  }

  // ---- lifecycle ----

  /**
   * Binds every address (unless `listen` is false); resolves when all listen. On any failure nothing
   * stays bound.
   */
  async start({ listen = true, ticketKeySource, authFailureLimiter }: StartOptions = {}): Promise<void> {
    if (this.state === "starting" || this.state === "running" || this.state === "stopping") {
      throw new Error("The server is already started; stop() it before starting it again.");
    }
    this.state = "starting";
    if (authFailureLimiter && !this.ownAuthFailureLimiter && this.settings.maxAuthFailuresPerIp > 0) {
      const { auth } = this.sessionConfig;
      this.sessionConfig = {
        ...this.sessionConfig,
        auth: { ...auth, addressLimit: authFailuresByAddress(authFailureLimiter) },
      };
    }
    try {
      if (this.settings.tlsMode !== "forbidden" || this.plan.implicitTlsPorts.size > 0) {
        this.tlsProvider = await this.createTlsProvider(ticketKeySource);
      }
      if (listen) {
        this.listening = await openListeners(
          this.settings,
          this.plan,
          (socket, role) => this.serveSocket(socket, role),
          (severity, message, error) => this.log(null, severity, message, error),
        );
      }
    } catch (error) {
      this.tlsProvider?.close();
      this.state = "new";
      throw error;
    }
    this.state = "running";
  }

  /**
   * Stops accepting connections and ends the open ones: by default idle sessions get 421 at once and
   * running transactions may finish within `timeout`; then everyone left gets 421.
   */
  async stop({ gracefully = true, timeout = 10_000 }: StopOptions = {}): Promise<void> {
    if (this.state !== "running") return;
    this.state = "stopping";
    const listenersClosed = this.listening?.close();
    this.listening = null;
    // Every session over (its 221 or 421 written) and nobody left in a PROXY header or TLS handshake.
    let sessionsOver = () => {};
    let socketsClosed = () => {};
    const allSessionsOver = new Promise<void>((resolve) => {
      sessionsOver = resolve;
    });
    const allSocketsClosed = new Promise<void>((resolve) => {
      socketsClosed = resolve;
    });
    this.onIdle = () => {
      if (this.admission.count === 0) sessionsOver();
      if (this.open.size === 0 && this.preparing.size === 0 && this.refusals.waiting.size === 0)
        socketsClosed();
    };
    this.onIdle();
    // Not yet in SMTP, they have no transaction to finish: a moment to complete their PROXY header or TLS
    // handshake (then they get 421), and no more, so that a silent client cannot hold the stop.
    const preparingCutoff = setTimeout(
      () => {
        for (const socket of this.preparing) socket.destroy();
      },
      gracefully ? Math.min(timeout, PREPARE_GRACE_MS) : 0,
    );
    for (const connection of this.open) {
      if (!connection.started) connection.session.shutdownNow();
      else if (gracefully) connection.session.requestClose();
      else connection.session.shutdownNow();
    }
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), gracefully ? timeout : 0);
    });
    if (await Promise.race([allSessionsOver.then(() => false), expired])) {
      for (const connection of this.open) connection.session.shutdownNow();
    }
    // Every client has its last reply: a moment to hang up (a lingering or refused socket would otherwise
    // hold the stop for its own linger), then whoever has not is cut off.
    const cutoff = setTimeout(() => {
      for (const connection of this.open) connection.socket.destroy();
      for (const socket of this.preparing) socket.destroy();
      this.refusals.destroyAll();
    }, PREPARE_GRACE_MS);
    await allSocketsClosed;
    clearTimeout(cutoff);
    clearTimeout(timer);
    clearTimeout(preparingCutoff);
    await listenersClosed;
    this.onIdle = null;
    this.tlsProvider?.close(); // stops the session-ticket key rotation
    this.tlsProvider = null;
    this.resolver?.cancel();
    this.resolver = null;
    this.state = "stopped";
  }

  private onIdle: (() => void) | null = null;

  /**
   * Serves a connection accepted elsewhere, as if one of the server's own listeners had accepted it on a
   * listener of that `role`: for a server started with `listen: false` (it must be running). Given
   * `elsewhere`, the connection was admitted by the process that accepted it, which keeps the limits
   * (runWorkers' primary); without, this server counts it against its own maxConnections and
   * maxConnectionsPerIp. Refusals get the same 421 replies as at the server's own listeners.
   */
  serveSocket(socket: Socket, role: ListenerRole, elsewhere?: CountedElsewhere): void {
    socket.on("error", ignore); // until a connection owns the socket, a failure only closes it
    if (this.state !== "running") {
      elsewhere?.leave();
      this.refusals.shuttingDown(socket, role.implicitTls);
      return;
    }
    if (elsewhere) {
      // It was refused already if over the limits, and its direct client counted, by the other process.
      this.serveAdmitted(socket, role, this.admission.enterCounted(elsewhere));
      return;
    }
    const { settings } = this;
    const ticket = this.admission.enter();
    if (!ticket) {
      this.refusals.tooBusy(socket, role.implicitTls);
      this.observer?.connectionRefused("max-connections", socket.remoteAddress ?? "");
      this.log(
        null,
        "warn",
        `Refused ${socket.remoteAddress}: maxConnections (${settings.maxConnections}) reached`,
      );
      return;
    }
    if (!role.proxy) {
      const peer = socket.remoteAddress ?? "";
      // A ticket of this server's own: the count answers at once.
      const counted = this.admission.countClient(ticket, peer) as boolean;
      if (!this.clientCounted(counted, socket, role, ticket, peer)) return;
    }
    this.serveAdmitted(socket, role, ticket);
  }

  /** A connection let in (its direct client counted, unless it comes through a proxy): PROXY, TLS, SMTP. */
  private serveAdmitted(socket: Socket, kind: ListenerRole, ticket: AdmissionTicket): void {
    // Given back when the session ends, or here when the socket closes first (whatever stage it reached).
    socket.once("close", () => this.admission.leave(ticket));
    if (!kind.implicitTls && !kind.proxy) {
      this.admit(socket, null, undefined, socket, ticket, socket.remoteAddress ?? "");
      return;
    }
    if (kind.proxy && !isTrusted(this.trustedProxies, socket.remoteAddress)) {
      this.log(null, "warn", `PROXY header expected from a trusted proxy, not from ${socket.remoteAddress}`);
      socket.destroy();
      return;
    }
    this.preparing.add(socket);
    socket.once("close", () => {
      if (this.preparing.delete(socket)) this.onIdle?.();
    });
    this.prepare(socket, kind, ticket).then(
      (prepared) => {
        this.preparing.delete(socket);
        if (prepared && this.state === "running") {
          const [ready, proxied, early, client] = prepared;
          this.admit(ready, proxied, early, socket, ticket, client);
        } else if (prepared) {
          this.admission.leave(ticket);
          this.refusals.shuttingDown(prepared[0], false); // in TLS already, if it is an implicit TLS port
        }
        this.onIdle?.();
      },
      (error: unknown) => {
        this.preparing.delete(socket);
        socket.destroy();
        this.log(null, "debug", `Connection from ${socket.remoteAddress} dropped: ${String(error)}`);
        this.onIdle?.();
      },
    );
  }

  /** After the client's count: false (and the client refused) when it had too many connections already. */
  private clientCounted(
    counted: boolean,
    socket: Socket,
    { implicitTls }: ListenerRole,
    ticket: AdmissionTicket,
    client: string,
  ): boolean {
    if (counted) return true;
    this.admission.leave(ticket); // refused: it no longer counts, whenever its socket closes
    this.refusals.tooManyFromClient(socket, implicitTls);
    this.observer?.connectionRefused("max-connections-per-ip", client);
    this.log(
      null,
      "warn",
      `Refused ${client}: maxConnectionsPerIp (${this.settings.maxConnectionsPerIp}) reached`,
    );
    return false;
  }

  /**
   * Before SMTP: the PROXY header (closed without a reply when bad), the client it names counted, then
   * the implicit TLS handshake. Resolves with the socket to talk through, the header, the bytes that
   * came after it (for the session: an early talker) and the client's address, or null when the client
   * was refused.
   */
  private async prepare(
    socket: Socket,
    kind: ListenerRole,
    ticket: AdmissionTicket,
  ): Promise<[Socket, ProxyInfo | null, Buffer | undefined, string] | null> {
    const timeout = this.settings.ioCmdTimeout;
    const proxied = kind.proxy ? await readProxyHeader(socket, timeout) : null;
    const peer = socket.remoteAddress ?? "";
    const client = clientAddress(peer, proxied?.info ?? null);
    // Clients the proxy could not name share one count, apart from the proxy's own direct clients. The
    // proxy's own health checks (v2 LOCAL) are not counted: the proxy is trusted, and must not be refused
    // its checks.
    const healthCheck = proxied?.info.command === "LOCAL" && proxied.info.version === 2;
    const counted = client || unnamedClientKey(peer);
    if (proxied && !healthCheck) {
      const allowed = await this.admission.countClient(ticket, counted);
      if (!this.clientCounted(allowed, socket, kind, ticket, counted)) return null;
    }
    if (!kind.implicitTls) return [socket, proxied?.info ?? null, proxied?.rest, client];
    // Behind a proxy, the start of the TLS handshake may have come with the header: the TLS layer gets it.
    const early = proxied?.rest ?? Buffer.alloc(0);
    const transport = early.length > 0 ? replayingSocket(socket, early) : socket;
    const secured = await upgradeToTls(transport, this.tlsProvider as TlsContextProvider, {
      handshakeTimeout: timeout,
    });
    return [secured, proxied?.info ?? null, undefined, client];
  }

  /** A connection ready to talk SMTP (after its TLS handshake on an implicit TLS port). */
  private admit(
    socket: Socket,
    proxied: ProxyInfo | null,
    early: Buffer | undefined,
    tcp: Socket,
    ticket: AdmissionTicket,
    /** The client's address: the TCP peer's, or the one a PROXY header named ("" when unknown). */
    client: string,
  ): void {
    const { settings } = this;
    const ctx = this.newContext(tcp); // addresses from the TCP socket (a TLS layer over a stream has none)
    if (proxied) {
      ctx.server.proxy = proxied;
      // PROXY (not LOCAL or UNKNOWN) with addresses: the real client is the one the proxy names.
      if (proxied.command === "PROXY" && proxied.source && proxied.family !== "UNIX") {
        ctx.server.remoteIp = ctx.server.remoteHost = proxied.source.address;
        ctx.server.remotePort = proxied.source.port;
        if (proxied.destination) {
          ctx.server.localIp = ctx.server.localHost = proxied.destination.address;
          ctx.server.localPort = proxied.destination.port;
        }
      }
    }
    if (socket instanceof TLSSocket && this.tlsProvider) {
      ctx.server.encrypted = new Date();
      ctx.server.tls = this.tlsProvider.describe(socket);
    }
    const connection = new Connection(
      socket,
      ctx,
      this.sessionConfig,
      this.sessionHooks,
      this.connectionOptions, // its close listener calls release
      ticket,
      settings.tlsMode !== "forbidden" ? (this.tlsProvider ?? undefined) : undefined,
      // Trust is judged on the client itself: behind a proxy, never on the proxy's own address.
      this.xclientClients !== null && isTrusted(this.xclientClients, client),
    );
    this.open.add(connection);
    this.observer?.connectionOpened(ctx);
    if (early && early.length > 0) connection.session.receive(early);
    if (settings.greetingDelay === 0) {
      this.enqueue(connection);
    } else {
      // The early-talker pause: a client that talks during it is answered 554 and closed by its session.
      connection.greetingTimer = setTimeout(() => this.enqueue(connection), settings.greetingDelay);
    }
  }

  /** The connection is ready for its greeting: it gets a processing slot, or waits for one. */
  private enqueue(connection: Connection): void {
    connection.greetingTimer = undefined;
    if (connection.session.isClosed) return;
    if (this.active < this.settings.maxProcessings) this.begin(connection);
    else this.waiting.push(connection);
  }

  private newContext(socket: Socket): SessionContext {
    return createContext({
      localIp: socket.localAddress ?? "",
      localPort: socket.localPort ?? 0,
      remoteIp: socket.remoteAddress ?? "",
      remotePort: socket.remotePort ?? 0,
      localResponse: this.greeting,
      heloResponse: this.heloGreeting,
    });
  }

  /** The active TLS context and certificate (the seed's ssl_context), after start() with TLS on. */
  get tls(): TlsContextProvider | null {
    return this.tlsProvider;
  }

  private async createTlsProvider(ticketKeySource: TicketKeySource | undefined): Promise<TlsContextProvider> {
    const s = this.settings;
    const listenNames = parseHostItems(s.hosts).filter((h) => h !== "*");
    const names = deriveCertificateNames(
      listenNames,
      [],
      s.tlsCertCn || undefined,
      s.tlsCertSan === ""
        ? undefined
        : s.tlsCertSan
            .split(",")
            .map((n) => n.trim())
            .filter(Boolean),
      s.hostname,
    );
    return TlsContextProvider.create({
      ...(s.tlsCertPath ? { certPath: s.tlsCertPath, keyPath: s.tlsKeyPath } : {}),
      cn: names.cn,
      san: names.san,
      preset: s.tlsPreset,
      ...(s.tlsCiphers ? { ciphers: s.tlsCiphers } : {}),
      ...(s.tlsMinVersion ? { minVersion: s.tlsMinVersion } : {}),
      ...(s.tlsCaPath ? { caPath: s.tlsCaPath } : {}),
      ...(s.tlsRequestCert ? { requestCert: true } : {}),
      ticketKeyRotation: s.tlsTicketKeyRotation,
      ...(ticketKeySource ? { ticketKeySource } : {}),
      sniCertificates: parseSniCertificates(s.tlsSniCertificates),
      logger: (severity, message) => this.log(null, severity, message),
    });
  }

  /** Gives the connection a processing slot: reverse lookup (bounded), connect hook, greeting. */
  private begin(connection: Connection): void {
    this.active++;
    connection.started = true;
    connection.holdsSlot = true;
    // Without a lookup nothing is awaited here: no coroutine and promise per connection.
    if (this.settings.doDnsReverseLookup) void this.lookupAndGreet(connection);
    else void this.greet(connection);
  }

  private async lookupAndGreet(connection: Connection): Promise<void> {
    const { server } = connection.ctx;
    // Through the (overridable) lookupHostname, bounded by reverseLookupTimeout either way.
    const lookup = (ip: string) => this.lookupHostname(ip);
    const timeout = this.settings.reverseLookupTimeout;
    [server.remoteHost, server.localHost] = await Promise.all([
      boundedLookup(lookup, server.remoteIp, timeout),
      boundedLookup(lookup, server.localIp, timeout),
    ]);
    await this.greet(connection);
  }

  /**
   * Whether a debug event reaches anyone: an onLogging of the user's own sees every event, the default
   * one only those of loggerSeverity and above. When nobody would see it, its text is not even built.
   */
  private debugLogged(): boolean {
    return (
      this.onLogging !== SmtpServer.prototype.onLogging ||
      severityEnabled("debug", this.settings.loggerSeverity)
    );
  }

  /** The connect hook and the greeting; a failure rejects the returned promise, as it always did. */
  private greet(connection: Connection): Promise<void> {
    if (connection.socket.destroyed) return DONE;
    try {
      const { server } = connection.ctx;
      if (this.debugLogged()) {
        this.log(connection.ctx, "debug", `Client connect from ${server.remoteIp}:${server.remotePort}`);
      }
      return connection.session.start() ?? DONE;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The host name of `ip` by reverse DNS (PTR), or `ip` itself when there is none. Override it to use
   * another source (a cache, a local table); the server bounds it by reverseLookupTimeout either way.
   */
  protected async lookupHostname(ip: string): Promise<string> {
    if (!this.resolver) {
      this.resolver = new dns.Resolver({ timeout: this.settings.reverseLookupTimeout, tries: 1 });
    }
    const names = await this.resolver.reverse(ip);
    return names[0] ?? ip;
  }

  /**
   * A session is over (its last reply written), or its socket closed first: its processing slot goes to
   * the longest-waiting connection, and its place in the connection counts is given back.
   */
  private sessionEnded(connection: Connection): void {
    this.admission.leave(connection.ticket);
    this.onIdle?.();
    if (connection.greetingTimer) clearTimeout(connection.greetingTimer);
    connection.greetingTimer = undefined;
    if (!connection.holdsSlot) return;
    connection.holdsSlot = false;
    this.active--;
    let next = this.waiting.shift();
    while (next?.session.isClosed) next = this.waiting.shift();
    if (next && this.state === "running") void this.begin(next);
  }

  /**
   * A closed session's socket waits a moment for the client to hang up (see Connection.close). Such
   * sockets no longer count against maxConnections, so they are bounded here instead: beyond as many
   * again, a socket is destroyed as soon as its last reply is written.
   */
  private linger(connection: Connection): void {
    if (connection.socket.destroyed) return;
    connection.lingering = true;
    this.lingering++;
    if (this.lingering > this.settings.maxConnections) connection.destroyWhenWritten();
  }

  /** A connection's socket closed. */
  private release(connection: Connection): void {
    if (!this.open.delete(connection)) return;
    this.observer?.connectionClosed(connection.ctx);
    if (connection.lingering) this.lingering--;
    connection.session.end();
    this.sessionEnded(connection);
    if (connection.started) {
      Promise.resolve()
        .then(() => this.onDisconnect(connection.ctx))
        .catch((error) => this.log(connection.ctx, "error", `onDisconnect failed: ${String(error)}`, error));
      this.log(connection.ctx, "debug", "Client disconnect");
    } else {
      const index = this.waiting.indexOf(connection);
      if (index !== -1) this.waiting.splice(index, 1);
    }
    this.onIdle?.();
  }
}

const DONE = Promise.resolve();

/**
 * Milliseconds a stop gives connections still in their PROXY header or implicit TLS handshake, and
 * clients that have their last reply, before it closes their sockets.
 */
const PREPARE_GRACE_MS = 1000;

function ignore(): void {}
