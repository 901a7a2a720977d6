/**
 * The operations endpoint of `mailgate serve --metrics-listen`: GET /metrics (Prometheus text), /healthz
 * (200 while the process runs) and /readyz (200 when ready, 503 with the reason otherwise). Plain HTTP and
 * no authentication: it belongs on loopback or a private network, as Prometheus exporters usually are.
 *
 * Whoever reaches it may still not make it work for them: requests that come while a render (or a
 * readiness check) runs share it, so that pipelined or concurrent requests cost one render at a time (a
 * render with --workers asks every worker over IPC, in the process that also accepts the SMTP
 * connections), a connection carries MAX_REQUESTS_PER_CONNECTION requests at most, and idle connections
 * make room for new ones.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { explainListenError } from "../server/listeners.js";

export interface EndpointHandlers {
  /** The Prometheus text and its content type. */
  metrics(): Promise<{ text: string; contentType: string }>;
  /** Null when ready, else why not. */
  readiness(): Promise<string | null>;
}

/** Scrapers and probes need few connections; beyond, a new one takes the place of a stalled one. */
const MAX_CONNECTIONS = 64;
/**
 * Requests on one keep-alive connection; the last is answered with Connection: close and pipelined ones
 * beyond get 503 without a render. A scraper reconnects now and then; a flood of pipelined requests ends.
 */
const MAX_REQUESTS_PER_CONNECTION = 100;
/** Milliseconds a connection has to send a whole request, its headers included. */
const REQUEST_TIMEOUT_MS = 10_000;
/**
 * How often the request timeout is checked (Node's default, 30 s, let 64 connections that send nothing
 * keep every scrape and probe out for 30 s at a time).
 */
const CHECK_INTERVAL_MS = 1000;

export class OperationsEndpoint {
  private constructor(
    private readonly server: Server,
    /** "http://host:port", with the real port when 0 was asked for. */
    readonly url: string,
  ) {}

  /** Listens on host:port; rejects with one sentence when it cannot (the port in use, say). */
  static async listen(host: string, port: number, handlers: EndpointHandlers): Promise<OperationsEndpoint> {
    const shared: EndpointHandlers = {
      metrics: oneAtATime(handlers.metrics),
      readiness: oneAtATime(handlers.readiness),
    };
    const server = createServer({ connectionsCheckingInterval: CHECK_INTERVAL_MS }, (request, response) => {
      respond(request, response, shared).catch((error: unknown) => {
        send(response, 500, `error: ${error instanceof Error ? error.message : String(error)}\n`);
      });
    });
    makeRoomForNewConnections(server);
    server.maxRequestsPerSocket = MAX_REQUESTS_PER_CONNECTION;
    server.headersTimeout = REQUEST_TIMEOUT_MS;
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error: NodeJS.ErrnoException) =>
        reject(new Error(`Cannot listen for metrics on ${host}:${port}: ${explainListenError(error)}`)),
      );
      server.listen({ host, port }, resolve);
    });
    const address = server.address();
    const bound = address && typeof address === "object" ? address.port : port;
    const shown = host.includes(":") ? `[${host}]` : host;
    return new OperationsEndpoint(server, `http://${shown}:${bound}`);
  }

  /** Stops listening and closes its connections (a scrape under way is cut). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

/**
 * At most MAX_CONNECTIONS connections: a new one beyond closes a connection that makes no progress, of the
 * client address that holds the most connections (so that one client churning connections evicts its own,
 * not a slow probe's), the one stalled longest; or itself when every connection has made progress lately.
 * A connection makes no progress while it is idle (connected or answered, and silent since), or while an
 * answer of its has been waiting more than REQUEST_TIMEOUT_MS (an answer takes milliseconds unless its
 * client does not read it). (server.maxConnections would close the new one: 64 connections that send
 * nothing, or ask and never read, or ask every few seconds, kept every probe out for as long as they liked.)
 */
function makeRoomForNewConnections(server: Server): void {
  /** Each open connection: its client's address, its requests not yet answered, when it last made progress. */
  const open = new Map<Socket, { address: string; pending: number; since: number }>();
  /** The connection to close for a new one, or undefined when every one has made progress lately. */
  const stalest = (): Socket | undefined => {
    const now = performance.now();
    const perAddress = new Map<string, number>();
    for (const { address } of open.values()) perAddress.set(address, (perAddress.get(address) ?? 0) + 1);
    let chosen: Socket | undefined;
    let mostOfOneAddress = -1;
    let longestStalled = 0;
    for (const [socket, state] of open) {
      const stalled = now - state.since;
      if (state.pending > 0 && stalled <= REQUEST_TIMEOUT_MS) continue; // making progress
      const ofItsAddress = perAddress.get(state.address) ?? 0;
      if (
        ofItsAddress > mostOfOneAddress ||
        (ofItsAddress === mostOfOneAddress && stalled > longestStalled)
      ) {
        chosen = socket;
        mostOfOneAddress = ofItsAddress;
        longestStalled = stalled;
      }
    }
    return chosen;
  };
  server.on("connection", (socket: Socket) => {
    if (open.size >= MAX_CONNECTIONS) {
      const evicted = stalest();
      if (!evicted) {
        socket.destroy();
        return;
      }
      open.delete(evicted);
      evicted.destroy();
    }
    open.set(socket, { address: socket.remoteAddress ?? "", pending: 0, since: performance.now() });
    socket.once("close", () => open.delete(socket));
  });
  server.on("request", (request: IncomingMessage, response: ServerResponse) => {
    const state = open.get(request.socket);
    if (!state) return;
    if (state.pending++ === 0) state.since = performance.now();
    response.once("close", () => {
      state.pending--;
      state.since = performance.now();
    });
  });
}

/** The call under way, shared by whoever asks while it runs; a call after it has settled starts anew. */
function oneAtATime<T>(call: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | null = null;
  return () => {
    running ??= call().finally(() => {
      running = null;
    });
    return running;
  };
}

async function respond(
  request: IncomingMessage,
  response: ServerResponse,
  handlers: EndpointHandlers,
): Promise<void> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    response.setHeader("Allow", "GET, HEAD");
    return send(response, 405, "only GET and HEAD\n");
  }
  const path = (request.url ?? "/").split("?")[0];
  switch (path) {
    case "/metrics": {
      const { text, contentType } = await handlers.metrics();
      return send(response, 200, text, contentType);
    }
    case "/healthz":
      return send(response, 200, "ok\n");
    case "/readyz": {
      const reason = await handlers.readiness();
      return reason === null ? send(response, 200, "ready\n") : send(response, 503, `not ready: ${reason}\n`);
    }
    default:
      return send(response, 404, "not found: /metrics, /healthz and /readyz are served here\n");
  }
}

function send(
  response: ServerResponse,
  status: number,
  body: string,
  contentType = "text/plain; charset=utf-8",
): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  response.writeHead(status, { "Content-Type": contentType, "Cache-Control": "no-store" });
  response.end(response.req.method === "HEAD" ? undefined : body);
}
