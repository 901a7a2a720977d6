/**
 * A connection's way in before SMTP: the refusals when a limit is reached (421, metrics, log), the
 * PROXY header and the client it names counted, then the implicit TLS handshake. The server's
 * lifecycle decides what comes before (admission) and after (the session).
 */
import type { Socket } from "node:net";
import type { Observer } from "../protocol/observer.js";
import type { ProxyInfo } from "../protocol/proxy.js";
import type { TlsContextProvider } from "../tls/context.js";
import { upgradeToTls } from "../tls/upgrade.js";
import type { Admission, AdmissionTicket } from "./admission.js";
import { clientAddress, unnamedClientKey } from "./client-key.js";
import type { ListenerRole } from "./listeners.js";
import type { ServerSettings } from "./options.js";
import { readProxyHeader, replayingSocket } from "./proxy-reader.js";
import { RefusalWarnings } from "./refusal-warnings.js";
import type { Refusals } from "./refusals.js";

/** What the intake needs of its server. */
export interface IntakeParts {
  readonly settings: Readonly<ServerSettings>;
  readonly admission: Admission;
  readonly refusals: Refusals;
  readonly observer: Observer | undefined;
  warn(message: string): void;
  /** The TLS provider, made by start(). */
  tlsProvider(): TlsContextProvider | null;
}

/**
 * A connection ready for SMTP: the socket to talk through, the PROXY header, the bytes that came after
 * it (for the session: an early talker) and the client's address ("" when unknown).
 */
export type Prepared = [Socket, ProxyInfo | null, Buffer | undefined, string];

export class Intake {
  /** The refusals' warnings, at most one line per reason every 10 s under a flood. */
  private readonly refusalWarnings = new RefusalWarnings((message) => this.parts.warn(message));

  constructor(private readonly parts: IntakeParts) {}

  /** The server stopped: the refusals counted but not logged yet are summed up now. */
  stopped(): void {
    this.refusalWarnings.flush();
  }

  /** maxConnections reached: a 421, and the refusal counted and logged. */
  refuseBusy(socket: Socket, { implicitTls }: ListenerRole): void {
    const { refusals, observer, settings } = this.parts;
    refusals.tooBusy(socket, implicitTls);
    observer?.connectionRefused("max-connections", socket.remoteAddress ?? "");
    this.refusalWarnings.refused(
      socket.remoteAddress ?? "",
      `maxConnections (${settings.maxConnections}) reached`,
    );
  }

  /** Its client talked before the greeting (the session answered 554 and closes): logged, bounded. */
  refusedEarlyTalker(client: string): void {
    this.refusalWarnings.refused(client, "data before the greeting (early talker)");
  }

  /** After the client's count: false (and the client refused) when it had too many connections already. */
  clientCounted(
    counted: boolean,
    socket: Socket,
    { implicitTls }: ListenerRole,
    ticket: AdmissionTicket,
    client: string,
  ): boolean {
    if (counted) return true;
    const { admission, refusals, observer, settings } = this.parts;
    admission.leave(ticket); // refused: it no longer counts, whenever its socket closes
    refusals.tooManyFromClient(socket, implicitTls);
    observer?.connectionRefused("max-connections-per-ip", client);
    this.refusalWarnings.refused(client, `maxConnectionsPerIp (${settings.maxConnectionsPerIp}) reached`);
    return false;
  }

  /**
   * Before SMTP: the PROXY header (closed without a reply when bad), the client it names counted, then
   * the implicit TLS handshake. Resolves with the connection ready for SMTP, or null when the client
   * was refused.
   */
  async prepare(socket: Socket, kind: ListenerRole, ticket: AdmissionTicket): Promise<Prepared | null> {
    const timeout = this.parts.settings.ioCmdTimeout;
    const proxied = kind.proxy ? await readProxyHeader(socket, timeout) : null;
    const peer = socket.remoteAddress ?? "";
    const client = clientAddress(peer, proxied?.info ?? null);
    // Clients the proxy could not name share one count, apart from the proxy's own direct clients. The
    // proxy's own health checks (v2 LOCAL) are not counted: the proxy is trusted, and must not be refused
    // its checks.
    const healthCheck = proxied?.info.command === "LOCAL" && proxied.info.version === 2;
    const counted = client || unnamedClientKey(peer);
    if (proxied && !healthCheck) {
      const allowed = await this.parts.admission.countClient(ticket, counted);
      if (!this.clientCounted(allowed, socket, kind, ticket, counted)) return null;
    }
    if (!kind.implicitTls) return [socket, proxied?.info ?? null, proxied?.rest, client];
    // Behind a proxy, the start of the TLS handshake may have come with the header: the TLS layer gets it.
    const early = proxied?.rest ?? Buffer.alloc(0);
    const transport = early.length > 0 ? replayingSocket(socket, early) : socket;
    const secured = await upgradeToTls(transport, this.parts.tlsProvider() as TlsContextProvider, {
      handshakeTimeout: timeout,
    });
    return [secured, proxied?.info ?? null, undefined, client];
  }
}
