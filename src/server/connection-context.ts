/**
 * The context a new connection's session starts with: the addresses of its TCP socket, or those a
 * PROXY header names; its TLS details after an implicit TLS handshake; the server's greetings.
 */
import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import { createContext, type SessionContext } from "../protocol/context.js";
import type { ProxyInfo } from "../protocol/proxy.js";
import type { TlsContextProvider } from "../tls/context.js";
import type { ServerSettings } from "./options.js";

/** The 220 greeting and the first line of the HELO/EHLO answer each context starts with. */
export interface Greetings {
  localResponse: string;
  heloResponse: string;
}

export function greetingsOf(s: Pick<ServerSettings, "hostname" | "lmtp">): Greetings {
  return {
    localResponse: `${s.hostname} ${s.lmtp ? "LMTP" : "ESMTP"} mailgate ready`,
    heloResponse: `${s.hostname} at your service`,
  };
}

/**
 * The context of a connection: addresses from the TCP socket `tcp` (a TLS layer over a stream has
 * none), replaced by those the PROXY header names; TLS details when `socket` is already secured.
 */
export function connectionContext(
  tcp: Socket,
  socket: Socket,
  proxied: ProxyInfo | null,
  greetings: Greetings,
  tlsProvider: TlsContextProvider | null,
): SessionContext {
  const ctx = createContext({
    localIp: tcp.localAddress ?? "",
    localPort: tcp.localPort ?? 0,
    remoteIp: tcp.remoteAddress ?? "",
    remotePort: tcp.remotePort ?? 0,
    ...greetings,
  });
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
  if (socket instanceof TLSSocket && tlsProvider) {
    ctx.server.encrypted = new Date();
    ctx.server.tls = tlsProvider.describe(socket);
  }
  return ctx;
}
