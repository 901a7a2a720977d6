/**
 * SmtpServer: listeners, connection and processing limits, lifecycle, and the event hooks a user
 * overrides (by subclassing, as the seed does, or by passing functions in the options: one code path).
 */
import type { BlockList, Socket } from "node:net";
import type { Readable } from "node:stream";
import type { EsmtpParams } from "../protocol/commands.js";
import type { SessionContext } from "../protocol/context.js";
import { SmtpError } from "../protocol/errors.js";
import type { MessageOutcome, SessionHooks, Severity, SmtpServerHooks } from "../protocol/hooks.js";
import type { Awaitable } from "../protocol/maybe-async.js";
import type { Observer } from "../protocol/observer.js";
import type { ProxyInfo } from "../protocol/proxy.js";
import type { SessionConfig } from "../protocol/session.js";
import type { SaslCredentials, SaslMechanismName } from "../sasl/mechanism.js";
import { type TlsContextOptions, TlsContextProvider } from "../tls/context.js";
import { formatAddress, parseHostItems } from "./addresses.js";
import { Admission, type AdmissionTicket, type CountedElsewhere } from "./admission.js";
import { compileSessionConfig, withAuthFailureLimiter } from "./compiled-settings.js";
import { Connection, type ConnectionOptions } from "./connection.js";
import { connectionContext, type Greetings, greetingsOf } from "./connection-context.js";
import { drain } from "./drain.js";
import { bindHooks } from "./hook-binding.js";
import { Intake } from "./intake.js";
import {
  type ListenerRole,
  type Listeners,
  type ListenPlan,
  listenPlan,
  openListeners,
} from "./listeners.js";
import { defaultLogger, guardedLogging, severityEnabled, writeLog } from "./logger.js";
import { completeObserver } from "./observer.js";
import { type Logger, resolveSettings, type ServerSettings } from "./options.js";
import { addressList, isTrusted } from "./proxy-reader.js";
import { Refusals } from "./refusals.js";
import { lookupHostNames, PtrResolver } from "./reverse-dns.js";
import {
  checkAuthNeedsTls,
  checkServiceOptions,
  hookOptions,
  rejectUnknownOptions,
  type SmtpServerOptions,
  type StartOptions,
  type StopOptions,
} from "./server-options.js";
import { tlsProviderOptions } from "./tls-setup.js";

export type { SmtpServerOptions, StartOptions, StopOptions } from "./server-options.js";

export class SmtpServer implements SmtpServerHooks {
  readonly settings: Readonly<ServerSettings>;
  readonly logger: Logger;
  /** How the server reports its own events: through onLogging, whose failure never breaks anything. */
  private readonly log = guardedLogging((ctx, severity, message, error) =>
    this.onLogging(ctx, severity, message, error),
  );
  private sessionConfig: SessionConfig;
  /** The options gave the AUTH failure limiter: start() keeps it. */
  private readonly ownAuthFailureLimiter: boolean;
  private readonly sessionHooks: SessionHooks;
  /** The `observer` option, completed; undefined without one (then no event costs more than a check). */
  private readonly observer: Observer | undefined;
  /** Shared by every connection: built once, not per connection. */
  private readonly connectionOptions: ConnectionOptions;
  /** The 220 greeting and the first line of the HELO/EHLO answer each context starts with. */
  private readonly greetings: Greetings;
  /** The listeners the settings ask for, and those bound (while started with listen). */
  private readonly plan: ListenPlan;
  private listening: Listeners | null = null;
  private tlsProvider: TlsContextProvider | null = null;
  /** The TLS provider's options, checked at construction; start() makes the provider with them. */
  private readonly tlsOptions: TlsContextOptions;
  private readonly trustedProxies: BlockList;
  /** Null when nobody may use XCLIENT and XFORWARD: no address check per connection then. */
  private readonly xclientClients: BlockList | null;
  /** Connections counted against maxConnections and maxConnectionsPerIp. */
  private readonly admission: Admission;
  /** Sockets in their PROXY header or implicit TLS handshake: not yet connections. */
  private readonly preparing = new Set<Socket>();
  /** Sockets refused with a 421, waiting briefly for their client to hang up. */
  private readonly refusals: Refusals;
  /** The PROXY header, the client count and the implicit TLS handshake, before SMTP. */
  private readonly intake: Intake;
  /** Connections whose session is over and whose socket waits for the client to hang up. */
  private lingering = 0;
  private readonly open = new Set<Connection>();
  private readonly waiting: Connection[] = [];
  private active = 0;
  private state: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  private readonly resolver: PtrResolver;

  constructor(options: SmtpServerOptions = {}) {
    const given = options as Record<string, unknown>;
    rejectUnknownOptions(given);
    this.settings = Object.freeze(resolveSettings(options));
    const s = this.settings;
    this.plan = listenPlan(s, given.ports !== undefined || given.hosts !== undefined);
    this.trustedProxies = addressList("proxyTrusted", s.proxyTrusted);
    const xclientClients = addressList("xclientTrusted", s.xclientTrusted);
    this.xclientClients = xclientClients.rules.length > 0 ? xclientClients : null;
    this.tlsOptions = tlsProviderOptions(s, options, given);
    checkAuthNeedsTls(s, this.plan);
    Object.assign(this, hookOptions(given));
    checkServiceOptions(options);
    this.logger = options.logger ?? defaultLogger;
    this.sessionConfig = compileSessionConfig(s, options.authFailureLimiter);
    this.ownAuthFailureLimiter = options.authFailureLimiter !== undefined;
    this.observer = completeObserver(options.observer);
    this.sessionHooks = bindHooks(this, this.log, this.observer);
    this.connectionOptions = {
      commandTimeout: s.ioCmdTimeout,
      minDataRate: s.minDataRate,
      sessionClosed: (connection) => {
        this.sessionEnded(connection);
        this.linger(connection);
      },
      closed: (connection) => this.release(connection),
      refusedEarlyTalker: (connection) => this.intake.refusedEarlyTalker(connection.ctx.server.remoteIp),
    };
    this.admission = new Admission(s.maxConnections, s.maxConnectionsPerIp);
    this.refusals = new Refusals(s.hostname, s.maxConnections, () => this.onIdle?.());
    this.intake = new Intake({
      settings: s,
      admission: this.admission,
      refusals: this.refusals,
      observer: this.observer,
      warn: (message) => this.log(null, "warn", message),
      tlsProvider: () => this.tlsProvider,
    });
    this.resolver = new PtrResolver(s.reverseLookupTimeout);
    this.greetings = greetingsOf(s);
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
      this.sessionConfig = withAuthFailureLimiter(this.sessionConfig, authFailureLimiter);
    }
    try {
      if (this.settings.tlsMode !== "forbidden" || this.plan.implicitTlsPorts.size > 0) {
        this.tlsProvider = await TlsContextProvider.create({
          ...this.tlsOptions,
          ...(ticketKeySource ? { ticketKeySource } : {}),
          logger: (severity, message) => this.log(null, severity, message),
        });
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
    await drain(
      {
        admission: this.admission,
        open: this.open,
        preparing: this.preparing,
        refusals: this.refusals,
        watchIdle: (onIdle) => {
          this.onIdle = onIdle;
        },
      },
      gracefully,
      timeout,
    );
    await listenersClosed;
    this.tlsProvider?.close(); // stops the session-ticket key rotation
    this.tlsProvider = null;
    this.resolver.cancel();
    this.intake.stopped();
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
    const ticket = this.admission.enter();
    if (!ticket) {
      this.intake.refuseBusy(socket, role);
      return;
    }
    if (!role.proxy) {
      const peer = socket.remoteAddress ?? "";
      // A ticket of this server's own: the count answers at once.
      const counted = this.admission.countClient(ticket, peer) as boolean;
      if (!this.intake.clientCounted(counted, socket, role, ticket, peer)) return;
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
    this.intake.prepare(socket, kind, ticket).then(
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
    const ctx = connectionContext(tcp, socket, proxied, this.greetings, this.tlsProvider);
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

  /** The active TLS context and certificate (the seed's ssl_context), after start() with TLS on. */
  get tls(): TlsContextProvider | null {
    return this.tlsProvider;
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
    // Through the (overridable) lookupHostname, bounded by reverseLookupTimeout either way.
    const lookup = (ip: string) => this.lookupHostname(ip);
    await lookupHostNames(connection.ctx.server, lookup, this.settings.reverseLookupTimeout);
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
  protected lookupHostname(ip: string): Promise<string> {
    return this.resolver.lookup(ip);
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

function ignore(): void {}
