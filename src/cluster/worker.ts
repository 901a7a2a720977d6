/**
 * A worker of runWorkers, inside its process: it builds the user's server, starts it without listeners,
 * and serves the sockets the primary passes it. The limits are the primary's: each connection is counted
 * there, the client a PROXY header names is counted by asking it, and every connection's end is
 * reported back. Session-ticket keys and AUTH failure counts come from the primary too, so that TLS
 * resumption and maxAuthFailuresPerIp hold across workers; so may the counts of rate limits
 * (PrimaryServices.addressLimiter). The worker answers the primary's requests for its metrics and
 * readiness with what it was given to report (PrimaryServices.report).
 */
import type { Socket } from "node:net";
import type { Awaitable } from "../protocol/maybe-async.js";
import type { AddressLimiter } from "../server/address-limiter.js";
import type { CountedElsewhere } from "../server/admission.js";
import type { SmtpServer } from "../server/server.js";
import type { TicketKeySource } from "../tls/context.js";
import {
  HEARTBEAT_ENV,
  type Question,
  type ReportContent,
  type ReportKind,
  type ToPrimary,
  type ToWorker,
} from "./messages.js";

/** What a worker's primary offers the server that `create` builds. */
export interface PrimaryServices {
  /**
   * An AddressLimiter whose counts live in the primary, one for all workers: `limit` events of a key in
   * `windowMs` hold it back (as MemoryAddressLimiter). Each call of record() or isBlocked() is one round
   * trip to the primary. Limiters of the same name, limit and window share their counts.
   */
  addressLimiter(name: string, limit: number, windowMs: number): AddressLimiter;
  /** What this worker answers when the primary asks for its metrics or readiness (its operations endpoint). */
  report(reporter: WorkerReporter): void;
}

export interface WorkerReporter {
  /** prom-client's registry.getMetricsAsJSON() of the worker's metrics. */
  metrics(): Promise<unknown[]>;
  /** Null when the worker can take mail now, else why not. */
  readiness(): Promise<string | null>;
}

export interface WorkerHandle {
  role: "worker";
  /** This worker's server (started, without listeners of its own). */
  server: SmtpServer;
  /** Resolves when the server has stopped (retired by a rolling restart, or the whole stop). */
  stopped: Promise<void>;
}

/**
 * Runs the worker's side. A server that cannot be built or started is reported to the primary (whose
 * runWorkers rejects with the reason) and the process exits with status 1.
 */
export async function serveFromPrimary(
  create: (primary: PrimaryServices) => Awaitable<SmtpServer>,
  reload: (server: SmtpServer) => void,
): Promise<WorkerHandle> {
  const link = new PrimaryLink(reload);
  let server: SmtpServer;
  try {
    const ticketKeys = await link.ticketKeys;
    server = await create(link.services);
    await server.start({ listen: false, ticketKeySource: ticketKeys, authFailureLimiter: link.authFailures });
  } catch (error) {
    link.send({ type: "failed", message: error instanceof Error ? error.message : String(error) }, () =>
      process.exit(1),
    );
    return new Promise<never>(() => {}); // the process exits
  }
  const stopped = link.serve(server);
  link.send({ type: "ready" });
  link.beat(Number(process.env[HEARTBEAT_ENV] ?? 0));
  return { role: "worker", server, stopped };
}

/** The worker's end of the IPC channel. */
class PrimaryLink {
  /** Resolves with the key source once the primary's first key has come (it sends one at once). */
  readonly ticketKeys: Promise<TicketKeySource>;
  readonly authFailures: AddressLimiter;
  readonly services: PrimaryServices;
  private reporter: WorkerReporter | null = null;
  private ticketKey: Buffer | null = null;
  private readonly keyUsers = new Set<(key: Buffer) => void>();
  private readonly questions = new Map<
    number,
    { resolve(value: boolean): void; reject(error: Error): void }
  >();
  private requests = 0;
  private turns = 0;
  /** Connections passed by the primary and not yet released. */
  private live = 0;
  private drained: (() => void) | null = null;
  private server: SmtpServer | null = null;
  private stopRequested = false;
  private stopping: Promise<void> | null = null;
  private stopped: () => void = () => {};

  constructor(
    /** What a reload (SIGHUP) does with the server. */
    private readonly reload: (server: SmtpServer) => void,
  ) {
    let keyCame = () => {};
    this.ticketKeys = new Promise((resolve) => {
      keyCame = () => resolve({ start: (use) => this.subscribe(use) });
    });
    process.on("message", (message: ToWorker, socket?: Socket) => {
      if (message.type === "ticket-key") {
        this.ticketKey = Buffer.from(message.key, "base64");
        for (const use of this.keyUsers) use(this.ticketKey);
        keyCame();
      } else this.receive(message, socket);
    });
    // The primary has gone: no connection will come; the sessions under way finish.
    process.on("disconnect", () => {
      for (const { reject } of this.questions.values()) reject(new Error("The primary process has gone."));
      this.questions.clear();
      void this.stop();
    });
    // Ctrl-C and a service manager signal the whole process group: the primary leads the stop, and a
    // worker signalled on its own stops as gracefully.
    for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => void this.stop());
    process.on("SIGHUP", () => this.server && this.reload(this.server));
    this.authFailures = {
      isBlocked: (key) => this.ask({ ask: "auth-blocked", key }),
      record: (key) => this.ask({ ask: "auth-failed", key }),
      exclusive: async (key, check) => {
        const turn = ++this.turns;
        await this.ask({ ask: "auth-turn", key, turn });
        try {
          return await check();
        } finally {
          this.send({ type: "auth-turn-done", key, turn });
        }
      },
    };
    this.services = {
      addressLimiter: (name, limit, windowMs) => {
        for (const [what, value] of [
          ["limit", limit],
          ["windowMs", windowMs],
        ] as const) {
          if (!Number.isSafeInteger(value) || value < 1) {
            throw new RangeError(
              `Invalid address limiter ${what}: ${value}; it must be an integer of at least 1.`,
            );
          }
        }
        const limiter = { limiter: name, limit, windowMs };
        return {
          record: (key) => this.ask({ ask: "limit-record", ...limiter, key }),
          isBlocked: (key) => this.ask({ ask: "limit-blocked", ...limiter, key }),
        };
      },
      report: (reporter) => {
        this.reporter = reporter;
      },
    };
  }

  send(message: ToPrimary, sent?: () => void): void {
    if (process.connected && process.send) process.send(message, undefined, {}, () => sent?.());
    else sent?.();
  }

  /**
   * Tells the primary every `ms` milliseconds that this event loop runs (its watch for a blocked one);
   * 0: never. The timer does not keep the process alive.
   */
  beat(ms: number): void {
    if (!(ms > 0)) return;
    setInterval(() => this.send({ type: "alive" }), ms).unref();
  }

  /** Serves the sockets the primary passes; resolves when the server has stopped. */
  serve(server: SmtpServer): Promise<void> {
    this.server = server;
    const stopped = new Promise<void>((resolve) => {
      this.stopped = resolve;
    });
    if (this.stopRequested) void this.stop(); // asked while the server was being built
    return stopped;
  }

  private receive(message: ToWorker, socket: Socket | undefined): void {
    switch (message.type) {
      case "connection":
        if (socket) this.connection(message.connection, message.role, socket);
        else this.send({ type: "released", connection: message.connection });
        break;
      case "answer": {
        const question = this.questions.get(message.request);
        this.questions.delete(message.request);
        question?.resolve(message.value);
        break;
      }
      case "report":
        void this.report(message.request, message.kind);
        break;
      case "reload-tls":
        if (this.server) this.reload(this.server);
        break;
      case "retire":
        void this.retire(message.drainTimeout);
        break;
      case "stop":
        void this.stop();
        break;
      case "ping":
        this.send({ type: "alive" });
        break;
    }
  }

  private connection(id: number, role: { implicitTls: boolean; proxy: boolean }, socket: Socket): void {
    // A socket received from another process is made without allowHalfOpen: as at the server's own
    // listeners, a client that half-closes after QUIT still gets its replies.
    socket.allowHalfOpen = true;
    this.live++;
    let left = false;
    const counted: CountedElsewhere = {
      countClient: (key) => this.ask({ ask: "count-client", connection: id, key }),
      leave: () => {
        if (left) return;
        left = true;
        this.send({ type: "released", connection: id });
        if (--this.live === 0) this.drained?.();
      },
    };
    (this.server as SmtpServer).serveSocket(socket, role, counted);
  }

  private async report(request: number, kind: ReportKind): Promise<void> {
    const reporter = this.reporter;
    let report: ReportContent;
    try {
      if (!reporter) report = { kind: "none" };
      else if (kind === "metrics") report = { kind, metrics: await reporter.metrics() };
      else report = { kind, reason: await reporter.readiness() };
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      report = kind === "readiness" ? { kind, reason: `its check failed: ${why}` } : { kind: "none" };
    }
    this.send({ type: "report", request, report });
  }

  private ask(question: Question): Promise<boolean> {
    if (!process.connected) return Promise.reject(new Error("The primary process has gone."));
    const request = ++this.requests;
    return new Promise((resolve, reject) => {
      this.questions.set(request, { resolve, reject });
      this.send({ type: "question", request, ...question });
    });
  }

  private subscribe(use: (key: Buffer) => void): () => void {
    this.keyUsers.add(use);
    if (this.ticketKey) use(this.ticketKey);
    return () => this.keyUsers.delete(use);
  }

  /** No more connections come: the sessions may end by themselves within `drainTimeout`, then stop. */
  private async retire(drainTimeout: number): Promise<void> {
    if (this.live > 0 && !this.stopRequested) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.drained = resolve;
        timer = setTimeout(resolve, drainTimeout);
      });
      clearTimeout(timer);
    }
    await this.stop();
  }

  /** The server's graceful stop (once); then the channel is closed, so that the process may exit. */
  private stop(): Promise<void> {
    this.stopRequested = true;
    const server = this.server;
    if (!server) return Promise.resolve();
    this.stopping ??= (async () => {
      await server.stop();
      this.send({ type: "stopped" }, () => {
        if (process.connected) process.disconnect();
      });
      this.stopped();
    })();
    return this.stopping;
  }
}
