/**
 * The listening sockets a server's settings ask for: one per host and port (TCP), and the UNIX socket;
 * each with its role (implicit TLS, PROXY header). An SmtpServer opens them itself; the primary of
 * runWorkers opens the same ones and hands each accepted socket to a worker.
 */
import { chmod } from "node:fs/promises";
import { createServer, type ListenOptions, type Server, type Socket } from "node:net";
import type { Severity } from "../protocol/hooks.js";
import {
  formatAddress,
  type ListenAddress,
  parsePortItems,
  parsePortSubset,
  resolveListenAddresses,
} from "./addresses.js";
import type { ServerSettings } from "./options.js";
import { prepareSocketPath } from "./unix-socket.js";

/** What a listener's connections start with: a TLS handshake (an SMTPS port, RFC 8314), a PROXY header. */
export interface ListenerRole {
  implicitTls: boolean;
  proxy: boolean;
}

export const PLAIN_LISTENER: ListenerRole = { implicitTls: false, proxy: false };

/** Which listeners the settings ask for, validated. */
export interface ListenPlan {
  /** TCP listeners are made unless only a UNIX socket was asked for. */
  tcp: boolean;
  /** The ports of the `ports` option, each once. */
  configuredPorts: Set<number>;
  /** Ports whose listeners speak TLS from the first byte. */
  implicitTlsPorts: Set<number>;
  /** Ports whose listeners read a PROXY header first. */
  proxyPorts: Set<number>;
}

/**
 * The plan for `settings`; `tcpAsked` tells whether the options named ports or hosts (with a socketPath
 * and neither, only the UNIX socket listens). Throws one sentence for a tlsPorts or proxyPorts port that
 * is not one of ports.
 */
export function listenPlan(settings: Readonly<ServerSettings>, tcpAsked: boolean): ListenPlan {
  const configuredPorts = new Set(parsePortItems(settings.ports).flat());
  return {
    tcp: settings.socketPath === "" || tcpAsked,
    configuredPorts,
    implicitTlsPorts: parsePortSubset("tlsPorts", settings.tlsPorts, configuredPorts),
    proxyPorts: parsePortSubset("proxyPorts", settings.proxyPorts, configuredPorts),
  };
}

export interface Listeners {
  /** The TCP addresses bound (real ports for port 0). */
  readonly bound: readonly ListenAddress[];
  /** The UNIX socket's path, or "". */
  readonly socketPath: string;
  /** Stops listening; resolves when every listener is closed (open connections are not touched). */
  close(): Promise<void>;
}

export type ListenerLog = (severity: Severity, message: string, error?: unknown) => void;

/**
 * Binds every listener of the plan; `accept` gets each connection with its listener's role. With
 * `pauseOnConnect`, sockets come paused, unread (to be handed to another process). On any failure
 * nothing stays bound and the error says what to do.
 */
export async function openListeners(
  settings: Readonly<ServerSettings>,
  plan: ListenPlan,
  accept: (socket: Socket, role: ListenerRole) => void,
  log: ListenerLog,
  { pauseOnConnect = false } = {},
): Promise<Listeners> {
  const servers: Server[] = [];
  const bound: ListenAddress[] = [];
  const close = () => Promise.all(servers.map(closeServer)).then(() => {});
  const listen = (target: ListenOptions, label: string, role: ListenerRole) =>
    listenOne(target, label, (socket) => accept(socket, role), log, pauseOnConnect).then((server) => {
      servers.push(server);
      return server;
    });
  const { socketPath, socketMode, socketReplaceStale } = settings;
  try {
    const targets = plan.tcp ? await resolveListenAddresses(settings.hosts, settings.ports) : [];
    if (plan.tcp && targets.length === 0)
      throw new Error(`No address to listen on for hosts "${settings.hosts}".`);
    for (const target of targets) {
      const server = await listen(
        { host: target.host, port: target.port, ipv6Only: target.host.includes(":") },
        formatAddress(target),
        { implicitTls: plan.implicitTlsPorts.has(target.port), proxy: plan.proxyPorts.has(target.port) },
      );
      const address = server.address();
      if (address && typeof address === "object") {
        // After the bind: with port 0 only now is the real port known.
        bound.push({ host: target.host, port: address.port });
        log("info", `Listening on ${formatAddress({ host: target.host, port: address.port })}`);
      }
    }
    if (socketPath !== "") {
      await prepareSocketPath(socketPath, socketReplaceStale);
      await listen({ path: socketPath }, `UNIX socket ${socketPath}`, PLAIN_LISTENER);
      if (socketMode !== null) await chmod(socketPath, socketMode);
      log("info", `Listening on UNIX socket ${socketPath}`);
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { bound, socketPath, close };
}

function listenOne(
  target: ListenOptions,
  label: string,
  accept: (socket: Socket) => void,
  log: ListenerLog,
  pauseOnConnect: boolean,
): Promise<Server> {
  return new Promise((resolve, reject) => {
    // allowHalfOpen: a client that half-closes after QUIT still gets its replies; we end the socket.
    const server = createServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect }, accept);
    const onError = (error: NodeJS.ErrnoException) => {
      server.close();
      reject(new Error(`Cannot listen on ${label}: ${explainListenError(error)}`, { cause: error }));
    };
    server.once("error", onError);
    server.listen(target, () => {
      server.off("error", onError);
      server.on("error", (error) => log("error", `listener error: ${error.message}`, error));
      resolve(server);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Why a listen failed, and what to do about it, as the end of a sentence. */
export function explainListenError(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case "EADDRINUSE":
      return "the address is already in use; stop the other server or choose another port.";
    case "EADDRNOTAVAIL":
      return "this machine has no such address; check the hosts option.";
    case "EACCES":
      return "permission denied; ports below 1024 need privileges, so choose a higher port.";
    default:
      return `${error.message}.`;
  }
}
