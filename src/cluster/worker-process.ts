/**
 * One worker as the primary sees it: the child process (the same script with the same arguments, started
 * again from the file on disk), its state, and the connections passed to it that still count.
 */
import { type ChildProcess, fork } from "node:child_process";
import type { Socket } from "node:net";
import type { AdmissionTicket } from "../server/admission.js";
import { HEARTBEAT_ENV, type ToPrimary, type ToWorker, WORKER_ENV } from "./messages.js";

export type WorkerState = "starting" | "ready" | "retiring" | "stopping" | "exited";

export interface WorkerEvents {
  message(worker: WorkerProcess, message: ToPrimary): void;
  exit(worker: WorkerProcess, how: string): void;
}

/**
 * Milliseconds a worker has to exit after its server's graceful stop could have ended (10 s for
 * transactions, 1 s for the last clients to hang up): beyond, it is killed (a handle left open, a hook
 * that never returns).
 */
const EXIT_GRACE_MS = 10_000;
const SERVER_STOP_MS = 11_000;

export class WorkerProcess {
  state: WorkerState = "starting";
  /** Connections passed to it that still count against the limits, by connection number. */
  readonly connections = new Map<number, AdmissionTicket>();
  /** Resolves when its server is started; rejects with the reason when it fails or exits first. */
  readonly ready: Promise<void>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  /** When it became ready (performance.now()), 0 before. */
  readyAt = 0;
  /** When a message from it came last (performance.now()): any message shows that its event loop runs. */
  private heardAt = performance.now();
  /** Killed by the watch: it is not watched again while its exit is on its way. */
  private killed = false;
  private readonly child: ChildProcess;
  private killTimer: NodeJS.Timeout | undefined;

  constructor(
    /** Its number, counted up from 1 by the primary (the MAILGATE_WORKER variable). */
    readonly number: number,
    events: WorkerEvents,
    /** Milliseconds between the worker's "alive" messages once it is ready; 0: none (no watch). */
    heartbeat: number,
  ) {
    const script = process.argv[1] as string;
    const env: NodeJS.ProcessEnv = { ...process.env, [WORKER_ENV]: String(number) };
    if (heartbeat > 0) env[HEARTBEAT_ENV] = String(heartbeat);
    else delete env[HEARTBEAT_ENV];
    this.child = fork(script, process.argv.slice(2), {
      env,
      execArgv: process.execArgv,
    });
    let becameReady = () => {};
    let failed: (error: Error) => void = () => {};
    this.ready = new Promise((resolve, reject) => {
      becameReady = resolve;
      failed = reject;
    });
    this.ready.catch(() => {}); // whoever waits for it handles the failure; a replacement's is logged at exit
    this.child.on("message", (message: ToPrimary) => {
      this.heardAt = performance.now();
      if (message.type === "ready" && this.state === "starting") {
        this.state = "ready";
        this.readyAt = performance.now();
        becameReady();
      } else if (message.type === "failed") {
        failed(new Error(message.message));
      }
      events.message(this, message);
    });
    // A failed send (the channel closed as the worker died) is handled where it was sent; nothing else
    // the child process object reports needs more than its exit.
    this.child.on("error", () => {});
    this.exited = new Promise((resolve) => {
      this.child.on("exit", (code, signal) => {
        clearTimeout(this.killTimer);
        const how = signal ? `killed by ${signal}` : `exited with status ${code}`;
        failed(new Error(`A worker ${how} before it was ready.`));
        events.exit(this, how);
        this.state = "exited";
        resolve();
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Ready, and its channel open: it can be given connections (a worker that died is not yet exited). */
  get serving(): boolean {
    return this.state === "ready" && this.child.connected;
  }

  /** Sends a message, with a socket as its handle; `sent` gets the error if it could not be sent. */
  send(message: ToWorker, socket?: Socket, sent?: (error: Error | null) => void): void {
    if (!this.child.connected) {
      // Never at once: a caller that tries another worker on failure must not recurse.
      if (sent) process.nextTick(sent, new Error("The worker's channel is closed."));
      return;
    }
    this.child.send(message, socket, {}, (error) => sent?.(error ?? null));
  }

  /**
   * Milliseconds since the worker was last heard from (any message counts), for the primary's watch for a
   * blocked event loop; 0 for a worker that is not watched: one still starting (Node and the program's
   * own start come first), one already killed, or one whose channel is closed (it is exiting).
   */
  get silence(): number {
    if (this.state === "starting" || this.state === "exited" || this.killed || !this.child.connected)
      return 0;
    return performance.now() - this.heardAt;
  }

  /** Asks it to answer (for a worker of the release before, which sends no heartbeat of its own). */
  ping(): void {
    this.send({ type: "ping" });
  }

  /** The watch's clock starts again (the primary itself was paused: nobody could answer it meanwhile). */
  heardNow(): void {
    this.heardAt = performance.now();
  }

  /** Kills it at once: its event loop is blocked, so it could not act on SIGTERM. Its exit replaces it. */
  kill(): void {
    this.killed = true;
    this.child.kill("SIGKILL");
  }

  /** No more connections: its sessions may end by themselves for `drainTimeout` ms, then it stops. */
  retire(drainTimeout: number): void {
    if (this.state === "exited" || this.state === "stopping") return;
    this.state = "retiring";
    this.send({ type: "retire", drainTimeout });
    this.killAfter(drainTimeout + SERVER_STOP_MS + EXIT_GRACE_MS);
  }

  /** Its server's graceful stop, now. */
  stop(): void {
    if (this.state === "exited") return;
    this.state = "stopping";
    this.send({ type: "stop" });
    this.killAfter(SERVER_STOP_MS + EXIT_GRACE_MS);
  }

  private killAfter(ms: number): void {
    clearTimeout(this.killTimer);
    this.killTimer = setTimeout(() => this.child.kill("SIGKILL"), ms);
  }
}
