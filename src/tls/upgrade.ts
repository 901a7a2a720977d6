/**
 * The server side of a TLS handshake on an accepted TCP socket: STARTTLS (RFC 3207) after the "220"
 * reply, or implicit TLS (RFC 8314) right on accept. Both take the provider's newest context, so
 * reload() applies to the next connection without touching any listener.
 */
import type { Duplex } from "node:stream";
import tls from "node:tls";
import type { TlsContextProvider } from "./context.js";

export interface UpgradeOptions {
  /** Milliseconds the client has to complete the handshake (default 30 s); then the socket is destroyed. */
  handshakeTimeout?: number;
}

export class TlsHandshakeError extends Error {
  override readonly name = "TlsHandshakeError";
}

/**
 * Performs the server side of the handshake on `socket` and resolves with the secured socket, or
 * rejects (after destroying the connection) on a handshake error, a client that closes, a client
 * certificate refused by `rejectUnauthorized`, or the timeout.
 *
 * Before calling it for STARTTLS, the caller must stop reading plaintext: remove its 'data' listeners
 * (or pause the socket) and throw away whatever it had buffered after the STARTTLS line, so that
 * injected commands are never executed (CVE-2011-0411). Bytes still unread go to the TLS layer, which
 * refuses them as a bad handshake. After it resolves, attach 'error' and 'data' listeners to the
 * returned socket, and use `provider.describe(tlsSocket)` for protocol, cipher and client certificate.
 */
export function upgradeToTls(
  socket: Duplex,
  provider: TlsContextProvider,
  options: UpgradeOptions = {},
): Promise<tls.TLSSocket> {
  const timeoutMs = options.handshakeTimeout ?? 30_000;
  return provider.requestCert
    ? upgradeWithClientCertificates(socket, provider, timeoutMs)
    : upgradeShared(socket, provider, timeoutMs);
}

/** Common settling: one outcome, the timer cleared, listeners removed, the connection destroyed on failure. */
function settle(
  timeoutMs: number,
  destroy: () => void,
  resolve: (socket: tls.TLSSocket) => void,
  reject: (error: Error) => void,
) {
  let done = false;
  const cleanups: (() => void)[] = [];
  const finish = (outcome: () => void) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    for (const cleanup of cleanups) cleanup();
    outcome();
  };
  const timer = setTimeout(() => {
    fail(new TlsHandshakeError(`The TLS handshake did not complete within ${timeoutMs} ms.`));
  }, timeoutMs);
  const fail = (error: Error) =>
    finish(() => {
      destroy();
      reject(error);
    });
  return {
    succeed: (secured: tls.TLSSocket) => finish(() => resolve(secured)),
    fail,
    onCleanup: (cleanup: () => void) => cleanups.push(cleanup),
  };
}

function handshakeError(error: Error): TlsHandshakeError {
  // OpenSSL errors carry a short `reason` ("wrong version number"); their message is a raw error stack.
  const reason = (error as { reason?: unknown }).reason;
  const text = typeof reason === "string" && reason !== "" ? reason : error.message.trim();
  return new TlsHandshakeError(`The TLS handshake failed: ${text}.`, { cause: error });
}

/** No client certificates: a standalone TLSSocket on the shared active context (fast, resumable). */
function upgradeShared(
  socket: Duplex,
  provider: TlsContextProvider,
  timeoutMs: number,
): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secured = new tls.TLSSocket(socket, { isServer: true, ...provider.socketOptions() });
    const outcome = settle(timeoutMs, () => secured.destroy(), resolve, reject);
    const onSecure = () => outcome.succeed(secured);
    const onError = (error: Error) => outcome.fail(handshakeError(error));
    const onClose = () =>
      outcome.fail(new TlsHandshakeError("The client closed the connection during the TLS handshake."));
    secured.once("secure", onSecure);
    secured.on("error", onError);
    secured.once("close", onClose);
    // An orderly close (FIN) ends the input but, on a half-open socket, closes nothing: no handshake can
    // follow it, so it fails the handshake at once instead of holding the connection until the timeout.
    secured.once("end", onClose);
    outcome.onCleanup(() => {
      secured.off("secure", onSecure);
      secured.off("error", onError);
      secured.off("close", onClose);
      secured.off("end", onClose);
    });
  });
}

/**
 * Client certificates requested: node sets `authorized` / `authorizationError` only on sockets of a
 * tls.Server, so the connection goes through a tls.Server that never listens (an "engine"; documented
 * use: "this event can also be explicitly emitted by users to inject connections into the TLS server").
 * Making one costs a context made from PEM (about 3 ms of CPU), so engines are made once per generation
 * of the provider's context (rebuilt on reload and on a new session-ticket key) and reused: see
 * EnginePool. An engine serves one handshake at a time, because its events do not say which injected
 * socket they are about.
 */
function upgradeWithClientCertificates(
  socket: Duplex,
  provider: TlsContextProvider,
  timeoutMs: number,
): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const pool = enginePool(provider);
    const engine = pool.take();
    let secured: tls.TLSSocket | undefined;
    const outcome = settle(timeoutMs, () => (secured ?? socket).destroy(), resolve, reject);
    engine.once("secureConnection", (tlsSocket: tls.TLSSocket) => {
      secured = tlsSocket;
      // Half-open again, as the raw socket was: a client that half-closes after QUIT still gets its replies.
      tlsSocket.allowHalfOpen = halfOpen;
      if (provider.rejectUnauthorized && !tlsSocket.authorized) {
        const reason = tlsSocket.getPeerX509Certificate()
          ? String(tlsSocket.authorizationError ?? "not verified")
          : "no client certificate";
        outcome.fail(new TlsHandshakeError(`The client certificate was refused (${reason}).`));
      } else {
        outcome.succeed(tlsSocket);
      }
      pool.giveBack(engine); // its socket reported its end: no later event of it can reach the engine
    });
    engine.once("tlsClientError", (error: Error, tlsSocket: tls.TLSSocket) => {
      secured = tlsSocket;
      outcome.fail(handshakeError(error));
      pool.giveBack(engine); // node reports one client error per socket, and nothing after it
    });
    const onClose = () =>
      outcome.fail(new TlsHandshakeError("The client closed the connection during the TLS handshake."));
    socket.once("close", onClose);
    // An engine whose handshake ended otherwise (timeout, closed raw socket) is dropped, not given back:
    // its TLS socket may still report a late error, which must not reach the next handshake.
    outcome.onCleanup(() => {
      socket.off("close", onClose);
      engine.removeAllListeners("secureConnection");
      engine.removeAllListeners("tlsClientError");
    });
    // The engine's TLS socket, which copies the raw socket's allowHalfOpen, is out of reach until the
    // handshake ends. Not half-open, it closes itself on a FIN (see upgradeShared), which the engine then
    // reports as a tlsClientError.
    const halfOpen = socket.allowHalfOpen;
    socket.allowHalfOpen = false;
    engine.emit("connection", socket);
  });
}

/** Idle engines kept per generation at most: enough for bursts of handshakes, bounded in memory. */
const MAX_IDLE_ENGINES = 16;

/** The engines of one generation of a provider's context: made when none is idle, reused after. */
class EnginePool {
  private readonly idle: tls.Server[] = [];

  constructor(private readonly options: tls.TlsOptions) {}

  take(): tls.Server {
    // The policy (rejectUnauthorized) is applied after the handshake, so that the reason can be reported.
    return this.idle.pop() ?? tls.createServer({ ...this.options, rejectUnauthorized: false });
  }

  giveBack(engine: tls.Server): void {
    if (this.idle.length < MAX_IDLE_ENGINES) this.idle.push(engine);
  }
}

/** Keyed by the generation's active context: a reload or a new ticket key starts a new pool. */
const pools = new WeakMap<tls.SecureContext, EnginePool>();

function enginePool(provider: TlsContextProvider): EnginePool {
  const generation = provider.activeContext;
  let pool = pools.get(generation);
  if (pool === undefined) {
    pool = new EnginePool(provider.serverOptions());
    pools.set(generation, pool);
  }
  return pool;
}
