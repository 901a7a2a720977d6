/**
 * One connection = one driver: it owns the socket, the deadline and flow control, and feeds the
 * protocol session. Nothing else touches the socket.
 *
 * Flow control is the session's, stream-shaped: receive() answers false when the client does not read its
 * replies or the session holds too much unconsumed input (a hook or a slow stream consumer holds it up),
 * the socket then pauses, and inputConsumed() resumes it, as a Writable's write() and 'drain' do.
 */
import type { Socket } from "node:net";
import type { SessionContext } from "../protocol/context.js";
import type { SessionHooks } from "../protocol/hooks.js";
import { type SessionConfig, type SessionTransport, SmtpSession } from "../protocol/session.js";
import type { TlsContextProvider } from "../tls/context.js";
import { upgradeToTls } from "../tls/upgrade.js";
import type { AdmissionTicket } from "./admission.js";
import { type Deadline, DeadlineQueue } from "./deadlines.js";

export interface ConnectionLimits {
  /** Milliseconds for each command line (and each hook). */
  commandTimeout: number;
  /** Bytes per second a client must sustain in DATA. */
  minDataRate: number;
}

/** What every connection of a server shares: its limits, and whom to tell when one closes. */
export interface ConnectionOptions extends ConnectionLimits {
  /** The session is over (its last reply is written): its processing slot may serve another. */
  sessionClosed(connection: Connection): void;
  /** The socket the connection was made with has closed (its deadline is no longer watched). */
  closed(connection: Connection): void;
  /** Its client talked before the greeting and was refused (for the log, bounded under a flood). */
  refusedEarlyTalker(connection: Connection): void;
}

/** Milliseconds a closed session waits for the client to hang up before the socket is destroyed. */
const LINGER_MS = 5000;

/**
 * The connection a socket feeds. The socket listeners below are shared by all connections and find
 * theirs through the socket: an idle connection then costs no closures, contexts or `once` wrappers.
 */
const CONNECTION = Symbol("mailgate.connection");

type OwnedSocket = Socket & { [CONNECTION]?: Connection };

function connectionOf(socket: Socket): Connection {
  return (socket as OwnedSocket)[CONNECTION] as Connection;
}

function onSocketData(this: Socket, chunk: Buffer): void {
  if (!connectionOf(this).session.receive(chunk)) this.pause();
}

/** The client half-closed: its last commands are still answered (QUIT after the final dot). */
function onSocketEnd(this: Socket): void {
  connectionOf(this).session.inputEnded();
}

function onSocketError(this: Socket): void {
  connectionOf(this).failed();
}

function onSocketDrain(this: Socket): void {
  connectionOf(this).drained();
}

function onSocketClose(this: Socket): void {
  connectionOf(this).closed();
}

/** The deadlines of all connections, on one timer. */
const deadlines = new DeadlineQueue<Connection>();

function ignore(): void {}

export class Connection implements SessionTransport, Deadline {
  readonly session: SmtpSession;
  private deadline = 0;
  /** Its place in the deadline queue: one timer serves all connections, no work per command. */
  queueIndex = -1;
  private closing = false;
  /** Set once the session has been started. */
  started = false;
  /** From its start until its session is over: it holds one of the server's processing slots. */
  holdsSlot = false;
  /** Its session is over; its socket waits for the client to hang up. */
  lingering = false;
  /** The early-talker pause before it may have a processing slot (greetingDelay). */
  greetingTimer: NodeJS.Timeout | undefined;

  /** The socket the session talks through: the TCP socket, or its TLS layer after STARTTLS. */
  socket: Socket;

  /**
   * STARTTLS: present when it is offered. The plaintext socket stops feeding the session (bytes the
   * client sent after the command go to the TLS layer, which refuses them as a bad handshake), then the
   * session talks through TLS.
   */
  startTls: (() => Promise<void>) | undefined;

  constructor(
    socket: Socket,
    readonly ctx: SessionContext,
    config: SessionConfig,
    hooks: SessionHooks,
    private readonly options: ConnectionOptions,
    /** Its place in the server's connection counts, given back when its session ends. */
    readonly ticket: AdmissionTicket,
    /** Present when STARTTLS is offered. */
    private readonly tls?: TlsContextProvider,
    /** The client may use XCLIENT and XFORWARD. */
    readonly xclientTrusted = false,
  ) {
    this.socket = socket;
    this.startTls = tls ? this.upgrade : undefined;
    this.session = new SmtpSession(config, hooks, this, ctx);
    // Nagle would hold a reply back while an earlier segment waits for its ACK: replies are small and
    // each one is awaited by the client.
    socket.setNoDelay(true);
    this.listen(socket);
    socket.resume(); // a socket paused while its PROXY header was read must flow again
    // The deadline is checked when the time it was queued for comes, and queued again if it moved.
    this.deadline = Date.now() + options.commandTimeout;
    deadlines.schedule(this, this.deadline);
    socket.on("close", onSocketClose);
  }

  private listen(socket: Socket): void {
    (socket as OwnedSocket)[CONNECTION] = this;
    socket.on("data", onSocketData);
    socket.on("end", onSocketEnd);
    socket.on("error", onSocketError);
    socket.on("drain", onSocketDrain);
  }

  private async upgrade(): Promise<void> {
    const plain = this.socket;
    plain.off("data", onSocketData);
    plain.off("end", onSocketEnd);
    plain.off("drain", onSocketDrain);
    plain.off("error", onSocketError);
    plain.on("error", ignore); // the TLS layer reports failures; the raw socket only closes
    const secured = await upgradeToTls(plain, this.tls as TlsContextProvider, {
      handshakeTimeout: this.options.commandTimeout,
    });
    if (this.closing) {
      // Closed while it shook hands (a stop): nothing more is said.
      secured.destroy();
      return;
    }
    this.socket = secured;
    this.ctx.server.encrypted = new Date();
    this.ctx.server.tls = (this.tls as TlsContextProvider).describe(secured);
    this.listen(secured);
  }

  /** False when the client does not read its replies: the session runs no command until 'drain'. */
  write(text: string): boolean {
    if (this.socket.destroyed || this.closing) return true;
    this.socket.write(text);
    return !this.socket.writableNeedDrain;
  }

  refusedEarlyTalker(): void {
    this.options.refusedEarlyTalker(this);
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.socket.end();
    // Earlier than the command deadline it replaces: the queue must be told, or a client that never
    // hangs up would keep the socket open until that later time.
    this.deadline = Date.now() + LINGER_MS;
    if (!this.socket.destroyed) deadlines.schedule(this, this.deadline);
    // The client may take its time to hang up; it is no longer served meanwhile.
    this.options.sessionClosed(this);
  }

  /** Destroys the socket once what was written to it is handed to the system (after close()). */
  destroyWhenWritten(): void {
    const { socket } = this;
    if (socket.writableFinished) socket.destroy();
    else socket.once("finish", () => socket.destroy());
  }

  inputConsumed(): void {
    if (!this.socket.destroyed) this.socket.resume();
  }

  commandCompleted(): void {
    if (!this.closing) this.deadline = Date.now() + this.options.commandTimeout;
  }

  dataReceived(bytes: number): void {
    if (this.closing) return;
    const { commandTimeout, minDataRate } = this.options;
    const now = Date.now();
    this.deadline = Math.min(now + commandTimeout, this.deadline + (bytes * 1000) / minDataRate);
  }

  /** The socket failed. */
  failed(): void {
    this.session.end();
    this.socket.destroy();
  }

  /** The client reads its replies again. */
  drained(): void {
    this.session.outputDrained();
  }

  /** The socket the connection was made with has closed. */
  closed(): void {
    deadlines.cancel(this);
    this.options.closed(this);
  }

  onDue(): void {
    if (this.socket.destroyed) return;
    if (this.deadline <= Date.now()) {
      if (this.closing) {
        this.socket.destroy();
        return;
      }
      this.session.timeout(); // answers 421 and closes, which sets the linger deadline
    }
    deadlines.schedule(this, Math.max(Date.now() + 1, this.deadline));
  }
}
