/**
 * The primary of runWorkers: it owns every listening socket and never stops listening while it runs, so
 * that nobody is refused while workers come and go. It accepts each connection paused, decides admission
 * with exact counts over all workers (maxConnections, maxConnectionsPerIp of the TCP peer; a client a
 * PROXY header names is counted when its worker asks), refuses with the server's own 421 replies, and
 * passes the socket to the least loaded ready worker. It also holds what must be one for all workers:
 * the session-ticket key, the AUTH failure counts per address and the turns of their checks, the counts of
 * the workers' rate limits; and it gathers the workers' reports for one operations endpoint.
 */
import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import type { Severity } from "../protocol/hooks.js";
import { MemoryAddressLimiter } from "../server/address-limiter.js";
import { formatAddress } from "../server/addresses.js";
import { Admission, type AdmissionTicket } from "../server/admission.js";
import { type ListenerRole, type Listeners, type ListenPlan, openListeners } from "../server/listeners.js";
import type { ServerSettings } from "../server/options.js";
import { RefusalWarnings } from "../server/refusal-warnings.js";
import { Refusals } from "../server/refusals.js";
import { rotatingTicketKeys } from "../tls/context.js";
import type { Question, ReportKind, ToPrimary } from "./messages.js";
import { WorkerProcess } from "./worker-process.js";
import { type WorkerReport, WorkerReports } from "./worker-reports.js";

export interface PrimaryOptions {
  settings: Readonly<ServerSettings>;
  plan: ListenPlan;
  /** Worker processes to keep running. */
  workers: number;
  /** Milliseconds a retired worker lets its sessions end by themselves before it stops (rolling restart). */
  drainTimeout: number;
  /** Milliseconds a worker may go silent (its event loop blocked) before it is killed; 0: never. */
  hangTimeout: number;
  log(severity: Severity, message: string): void;
  /** Told of each connection the primary refuses at accept (for metrics). */
  refused?(reason: "max-connections" | "max-connections-per-ip", clientAddress: string): void;
}

/** An accepted connection not yet passed to a worker (none is ready). */
interface Waiting {
  id: number;
  socket: Socket;
  role: ListenerRole;
  ticket: AdmissionTicket;
  timer?: NodeJS.Timeout;
  gone?: () => void;
}

/** Crash replacement: the first waits this long, each quick crash after it twice as long, up to the cap. */
const BACKOFF_FIRST_MS = 100;
const BACKOFF_CAP_MS = 30_000;
/** A worker that served this long before it crashed is not part of a crash loop: the backoff starts anew. */
const STABLE_MS = 10_000;
/** The longest pause between two checks that the workers' event loops run (see watchWorkers). */
const WATCH_MAX_MS = 5000;

export class Primary {
  private readonly settings: Readonly<ServerSettings>;
  private readonly admission: Admission;
  private readonly refusals: Refusals;
  /** The refusals' warnings, at most one line per reason every 10 s under a flood. */
  private readonly refusalWarnings = new RefusalWarnings((message) => this.options.log("warn", message));
  private readonly workers = new Set<WorkerProcess>();
  private readonly waiting: Waiting[] = [];
  private listening: Listeners | null = null;
  private state: "new" | "running" | "stopping" | "stopped" = "new";
  private connections = 0;
  private workerNumbers = 0;
  /** For ties between equally loaded workers: the next one in turn. */
  private turn = 0;
  private ticketKey = randomBytes(48).toString("base64");
  private stopTicketKeys: () => void = () => {};
  private readonly authFailures: MemoryAddressLimiter | null;
  /** Per client key, the AUTH checks waiting for their turn, the running one first. */
  private readonly authTurns = new Map<string, { worker: WorkerProcess; request: number; turn: number }[]>();
  /** The workers' rate limits (limit-record questions), by name, limit and window. */
  private readonly sharedLimiters = new Map<string, MemoryAddressLimiter>();
  private readonly reports = new WorkerReports();
  private quickCrashes = 0;
  /** Replacements of crashed workers waiting for their backoff to pass. */
  private readonly replacements = new Set<NodeJS.Timeout>();
  private restarting: Promise<void> | null = null;
  private restartAgain = false;
  /** The watch for workers whose event loop is blocked (hangTimeout). */
  private watch: NodeJS.Timeout | undefined;

  constructor(private readonly options: PrimaryOptions) {
    const s = options.settings;
    this.settings = s;
    this.admission = new Admission(s.maxConnections, s.maxConnectionsPerIp);
    this.refusals = new Refusals(s.hostname, s.maxConnections, () => {});
    this.authFailures =
      s.maxAuthFailuresPerIp > 0
        ? new MemoryAddressLimiter({ limit: s.maxAuthFailuresPerIp, windowMs: s.authFailureWindow })
        : null;
  }

  /** "ip:port" of every listener, and "unix:path" for the socket. */
  get addresses(): string[] {
    const { bound = [], socketPath = "" } = this.listening ?? {};
    const tcp = bound.map(formatAddress);
    return socketPath === "" ? tcp : [...tcp, `unix:${socketPath}`];
  }

  /** The process ids of the workers that get connections. */
  get workerPids(): number[] {
    return [...this.workers].filter((w) => w.state === "ready").map((w) => w.pid);
  }

  /**
   * Listens, then starts the workers; resolves when all are ready. If a listener cannot be bound or a
   * worker fails to start, everything is stopped and the promise rejects with the reason.
   */
  async start(): Promise<void> {
    this.stopTicketKeys = rotatingTicketKeys(this.settings.tlsTicketKeyRotation).start((key) => {
      this.ticketKey = key.toString("base64");
      for (const worker of this.workers) worker.send({ type: "ticket-key", key: this.ticketKey });
    });
    try {
      this.listening = await openListeners(
        this.settings,
        this.options.plan,
        (socket, role) => this.accept(socket, role),
        (severity, message) => this.options.log(severity, message),
        { pauseOnConnect: true },
      );
      this.state = "running";
      this.watchWorkers();
      const started = Array.from({ length: this.options.workers }, () => this.startWorker());
      await Promise.all(started.map((worker) => worker.ready));
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  /**
   * Rolling restart: for each worker, a new one is started from the code on disk; once it is ready it
   * gets the new connections and the old one is retired (its sessions end, then it exits). Resolves when
   * every old worker has exited. If a new worker cannot start, the restart stops there and the old
   * workers go on serving. Asked again while one runs, another follows it.
   */
  restart(): Promise<void> {
    if (this.state !== "running") return Promise.resolve();
    if (this.restarting) {
      this.restartAgain = true;
      return this.restarting;
    }
    this.restarting = (async () => {
      do {
        this.restartAgain = false;
        await this.restartOnce();
      } while (this.restartAgain && this.state === "running");
      this.restarting = null;
    })();
    return this.restarting;
  }

  private async restartOnce(): Promise<void> {
    const old = [...this.workers].filter((w) => w.state === "ready");
    for (const worker of old) {
      if (this.state !== "running") return;
      if (worker.state !== "ready") continue; // it crashed meanwhile, and was replaced
      const fresh = this.startWorker();
      try {
        await fresh.ready;
      } catch (error) {
        this.options.log(
          "error",
          `Rolling restart stopped: a new worker could not start (${(error as Error).message}); the running workers go on serving.`,
        );
        return;
      }
      worker.retire(this.options.drainTimeout);
      this.options.log("info", `Worker ${worker.pid} retired; worker ${fresh.pid} serves in its place`);
    }
    await Promise.all(old.map((worker) => worker.exited));
    this.options.log("info", `Rolling restart done: ${this.workerPids.length} workers from the code on disk`);
  }

  /**
   * Asks the workers for their metrics (every worker still running, a retiring one included: its counts
   * are part of the totals) or their readiness (the workers that get connections); a worker that does not
   * answer within timeoutMs has a null report.
   */
  workerReports(kind: ReportKind, timeoutMs: number): Promise<WorkerReport[]> {
    const asked = [...this.workers].filter((w) =>
      kind === "readiness" ? w.serving : w.state !== "starting" && w.state !== "exited",
    );
    return this.reports.gather(asked, kind, timeoutMs);
  }

  /** Every worker reads its TLS certificate files again (SIGHUP). */
  reloadTls(): void {
    for (const worker of this.workers) worker.send({ type: "reload-tls" });
  }

  /**
   * Stops listening and stops every worker gracefully (running transactions finish, as a single
   * server's stop()); resolves when all have exited.
   */
  async stop(): Promise<void> {
    if (this.state === "stopping" || this.state === "stopped") return;
    this.state = "stopping";
    clearInterval(this.watch);
    for (const timer of this.replacements) clearTimeout(timer);
    this.replacements.clear();
    const closed = this.listening?.close();
    for (const waiting of this.waiting.splice(0)) {
      this.unwait(waiting);
      this.admission.leave(waiting.ticket);
      this.refusals.shuttingDown(waiting.socket, waiting.role.implicitTls);
    }
    for (const worker of this.workers) worker.stop();
    await Promise.all([...this.workers].map((worker) => worker.exited));
    await closed;
    this.stopTicketKeys();
    this.refusals.destroyAll();
    this.refusalWarnings.flush();
    this.state = "stopped";
  }

  private startWorker(): WorkerProcess {
    const worker = new WorkerProcess(
      ++this.workerNumbers,
      {
        message: (from, message) => this.received(from, message),
        exit: (from, how) => this.exited(from, how),
      },
      this.watchInterval(),
    );
    this.workers.add(worker);
    worker.send({ type: "ticket-key", key: this.ticketKey });
    return worker;
  }

  private accept(socket: Socket, role: ListenerRole): void {
    socket.on("error", ignore); // a failure before a worker has it only closes it
    if (this.state !== "running") {
      this.refusals.shuttingDown(socket, role.implicitTls);
      return;
    }
    const ticket = this.admission.enter();
    if (!ticket) {
      this.refusals.tooBusy(socket, role.implicitTls);
      this.options.refused?.("max-connections", socket.remoteAddress ?? "");
      this.refusalWarnings.refused(
        socket.remoteAddress ?? "",
        `maxConnections (${this.settings.maxConnections}) reached`,
      );
      return;
    }
    // Behind a PROXY header the client is known only once its worker has read the header: it asks then.
    const peer = socket.remoteAddress ?? "";
    if (!role.proxy && !this.admission.countClient(ticket, peer)) {
      this.admission.leave(ticket);
      this.refusals.tooManyFromClient(socket, role.implicitTls);
      this.options.refused?.("max-connections-per-ip", peer);
      this.refusalWarnings.refused(
        peer,
        `maxConnectionsPerIp (${this.settings.maxConnectionsPerIp}) reached`,
      );
      return;
    }
    this.pass({ id: ++this.connections, socket, role, ticket });
  }

  /** Passes the connection to the least loaded ready worker, or keeps it until one is ready. */
  private pass(connection: Waiting): void {
    const worker = this.leastLoaded();
    if (!worker) {
      this.wait(connection);
      return;
    }
    const { id, socket, role, ticket } = connection;
    worker.connections.set(id, ticket);
    worker.send({ type: "connection", connection: id, role }, socket, (error) => {
      if (!error) return;
      // The worker died before it got the socket: still open here, it goes to another.
      worker.connections.delete(id);
      if (socket.destroyed) this.admission.leave(ticket);
      else this.pass(connection);
    });
  }

  private leastLoaded(): WorkerProcess | undefined {
    const ready = [...this.workers].filter((w) => w.serving);
    if (ready.length === 0) return undefined;
    this.turn = (this.turn + 1) % ready.length;
    let best = ready[this.turn] as WorkerProcess;
    for (const worker of ready) if (worker.connections.size < best.connections.size) best = worker;
    return best;
  }

  /**
   * No worker is ready (all crashed, the replacements are starting): the connection waits, counted, for
   * at most ioCmdTimeout, then gets the busy 421; a client that hangs up meanwhile is forgotten.
   */
  private wait(connection: Waiting): void {
    const { socket, role, ticket } = connection;
    connection.gone = () => {
      this.unwait(connection);
      this.admission.leave(ticket);
    };
    socket.once("close", connection.gone);
    connection.timer = setTimeout(() => {
      this.unwait(connection);
      this.admission.leave(ticket);
      this.refusals.tooBusy(socket, role.implicitTls);
    }, this.settings.ioCmdTimeout);
    this.waiting.push(connection);
  }

  private unwait(connection: Waiting): void {
    clearTimeout(connection.timer);
    if (connection.gone) connection.socket.off("close", connection.gone);
    const index = this.waiting.indexOf(connection);
    if (index !== -1) this.waiting.splice(index, 1);
  }

  private received(worker: WorkerProcess, message: ToPrimary): void {
    switch (message.type) {
      case "ready":
        this.options.log("info", `Worker ${worker.pid} ready`);
        for (const waiting of this.waiting.splice(0)) {
          this.unwait(waiting);
          this.pass(waiting);
        }
        break;
      case "released": {
        const ticket = worker.connections.get(message.connection);
        worker.connections.delete(message.connection);
        if (ticket) this.admission.leave(ticket);
        break;
      }
      case "question":
        this.answer(worker, message.request, message);
        break;
      case "report":
        this.reports.received(message.request, message.report);
        break;
      case "auth-turn-done":
        this.endAuthTurn(message.key, (entry) => entry.worker === worker && entry.turn === message.turn);
        break;
      case "failed":
        this.options.log("error", `Worker ${worker.pid} could not start: ${message.message}`);
        break;
      case "stopped":
        break;
    }
  }

  private answer(worker: WorkerProcess, request: number, question: Question): void {
    const reply = (value: boolean) => worker.send({ type: "answer", request, value });
    switch (question.ask) {
      case "count-client": {
        const ticket = worker.connections.get(question.connection);
        // A connection that no longer counts is gone: its answer does not matter.
        reply(ticket ? (this.admission.countClient(ticket, question.key) as boolean) : true);
        break;
      }
      case "auth-blocked":
        reply(this.authFailures?.isBlocked(question.key) ?? false);
        break;
      case "auth-failed":
        reply(this.authFailures?.record(question.key) ?? false);
        break;
      case "auth-turn": {
        const queue = this.authTurns.get(question.key) ?? [];
        queue.push({ worker, request, turn: question.turn });
        this.authTurns.set(question.key, queue);
        if (queue.length === 1) reply(true);
        break;
      }
      case "limit-record":
        reply(this.sharedLimiter(question).record(question.key));
        break;
      case "limit-blocked":
        reply(this.sharedLimiter(question).isBlocked(question.key));
        break;
    }
  }

  /**
   * The limiter a worker's rate limit counts in, made at its first question. Keyed by limit and window
   * too: after a rolling restart with other limits, the new workers count apart from the old ones.
   */
  private sharedLimiter(question: {
    limiter: string;
    limit: number;
    windowMs: number;
  }): MemoryAddressLimiter {
    const { limiter: name, limit, windowMs } = question;
    const key = `${name} ${limit} ${windowMs}`;
    let limiter = this.sharedLimiters.get(key);
    if (!limiter) {
      limiter = new MemoryAddressLimiter({ limit, windowMs });
      this.sharedLimiters.set(key, limiter);
    }
    return limiter;
  }

  /** The running AUTH check of `key` is over (or its worker gone): the next one waiting gets its turn. */
  private endAuthTurn(key: string, ended: (entry: { worker: WorkerProcess; turn: number }) => boolean): void {
    const queue = this.authTurns.get(key);
    if (!queue) return;
    const head = queue[0];
    const rest = queue.filter((entry) => !ended(entry));
    if (rest.length === 0) this.authTurns.delete(key);
    else this.authTurns.set(key, rest);
    const next = rest[0];
    if (next && next !== head) next.worker.send({ type: "answer", request: next.request, value: true });
  }

  /** How often workers send "alive" and the watch looks: a third of hangTimeout, 5 s at most; 0 if off. */
  private watchInterval(): number {
    return Math.min(WATCH_MAX_MS, Math.floor(this.options.hangTimeout / 3));
  }

  /**
   * Every third of hangTimeout (5 s at most), each ready worker sends "alive" on its own timer, and the
   * primary looks at when it last heard from each; one silent for hangTimeout is killed, and replaced as
   * a crashed one is: a worker stuck in a loop would otherwise hold its connections forever. The worker
   * speaks first because an answer to the primary's question would come late: a message to a worker waits
   * in the channel until the worker has taken every socket sent before it (one turn of its event loop
   * each), so a busy worker that is handed many connections would look silent. (The primary still asks
   * too: a worker of the release before sends nothing unasked, and a rolling restart may meet one.) The
   * verdict waits for the I/O of the turn (setImmediate), so messages already received count; and a check
   * that comes much later than it should (the primary itself was paused: SIGSTOP, a frozen container)
   * starts every clock again instead of blaming the workers.
   */
  private watchWorkers(): void {
    const { hangTimeout } = this.options;
    if (hangTimeout === 0) return;
    const interval = this.watchInterval();
    let last = performance.now();
    this.watch = setInterval(() => {
      const now = performance.now();
      const paused = now - last > 2 * interval;
      last = now;
      setImmediate(() => this.checkWorkers(hangTimeout, paused));
    }, interval);
    this.watch.unref();
  }

  private checkWorkers(hangTimeout: number, paused: boolean): void {
    if (this.state !== "running") return; // stopping: each worker has its own deadline to exit
    for (const worker of this.workers) {
      if (paused) worker.heardNow();
      const silence = worker.silence;
      if (silence <= hangTimeout) {
        worker.ping();
        continue;
      }
      this.options.log(
        "error",
        `Worker ${worker.pid} has not answered for ${Math.round(silence)} ms, over the ${hangTimeout} ms of the worker hang timeout (its event loop is blocked: a hook that never gives it back?); killing it`,
      );
      worker.kill();
    }
  }

  private exited(worker: WorkerProcess, how: string): void {
    this.workers.delete(worker);
    this.reports.forget(worker);
    // Its connections are gone with it (the system closed their sockets): they count no more.
    for (const ticket of worker.connections.values()) this.admission.leave(ticket);
    worker.connections.clear();
    for (const key of [...this.authTurns.keys()]) this.endAuthTurn(key, (entry) => entry.worker === worker);
    const expected = worker.state === "retiring" || worker.state === "stopping";
    if (expected) {
      this.options.log("info", `Worker ${worker.pid} ${how}`);
      return;
    }
    if (this.state !== "running") return;
    const serving =
      [...this.workers].filter((w) => w.state === "starting" || w.state === "ready").length +
      this.replacements.size;
    const quick = worker.readyAt === 0 || performance.now() - worker.readyAt < STABLE_MS;
    this.quickCrashes = quick ? this.quickCrashes + 1 : 1;
    if (serving >= this.options.workers) {
      this.options.log("warn", `Worker ${worker.pid} ${how}`);
      return;
    }
    const delay = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** (this.quickCrashes - 1));
    this.options.log("warn", `Worker ${worker.pid} ${how}; a new one starts in ${delay} ms`);
    const timer = setTimeout(() => {
      this.replacements.delete(timer);
      if (this.state === "running") this.startWorker();
    }, delay);
    this.replacements.add(timer);
  }
}

function ignore(): void {}
