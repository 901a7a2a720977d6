/**
 * One connection = one driver: it owns the socket, the deadline timer and flow control, and feeds the
 * protocol session. Nothing else touches the socket.
 */
import type { Socket } from "node:net";
import type { SessionContext } from "../protocol/context.js";
import {
  type SessionConfig,
  type SessionHooks,
  type SessionTransport,
  SmtpSession,
} from "../protocol/session.js";
import type { TlsContextProvider } from "../tls/context.js";
import { upgradeToTls } from "../tls/upgrade.js";

export interface ConnectionLimits {
  /** Milliseconds for each command line (and each hook). */
  commandTimeout: number;
  /** Bytes per second a client must sustain in DATA. */
  minDataRate: number;
}

/** Milliseconds a closed session waits for the client to hang up before the socket is destroyed. */
const LINGER_MS = 5000;

export class Connection implements SessionTransport {
  readonly session: SmtpSession;
  private timer: NodeJS.Timeout;
  private deadline = 0;
  private closing = false;
  private sessionPaused = false;
  private writePaused = false;
  /** Set once the session has been started (it holds a processing slot). */
  started = false;

  /** The socket the session talks through: the TCP socket, or its TLS layer after STARTTLS. */
  socket: Socket;

  constructor(
    socket: Socket,
    readonly ctx: SessionContext,
    config: SessionConfig,
    hooks: SessionHooks,
    private readonly limits: ConnectionLimits,
    /** Present when STARTTLS is offered. */
    private readonly tls?: TlsContextProvider,
    /** The peer may use XCLIENT and XFORWARD. */
    readonly xclientTrusted = false,
  ) {
    this.socket = socket;
    this.session = new SmtpSession(config, hooks, this, ctx);
    // Nagle would hold a reply back while an earlier segment waits for its ACK: replies are small and
    // each one is awaited by the client.
    socket.setNoDelay(true);
    this.listen(socket);
    socket.resume(); // a socket paused while its PROXY header was read must flow again
    if (!tls) this.startTls = undefined;
    // One timer per connection, re-armed only when it fires early: no timer work per command.
    this.deadline = Date.now() + limits.commandTimeout;
    this.timer = setTimeout(() => this.onTimer(), limits.commandTimeout);
    socket.once("close", () => clearTimeout(this.timer));
  }

  private readonly onData = (chunk: Buffer) => this.session.receive(chunk);
  /** The client half-closed: its last commands are still answered (QUIT after the final dot). */
  private readonly onEnd = () => this.session.inputEnded();
  private readonly onError = () => {
    this.session.end();
    this.socket.destroy();
  };
  private readonly onDrain = () => {
    this.writePaused = false;
    this.updateFlow();
  };

  private listen(socket: Socket): void {
    socket.on("data", this.onData);
    socket.on("end", this.onEnd);
    socket.on("error", this.onError);
    socket.on("drain", this.onDrain);
  }

  /**
   * STARTTLS: the plaintext socket stops feeding the session (bytes the client sent after the command
   * go to the TLS layer, which refuses them as a bad handshake), then the session talks through TLS.
   */
  startTls?: () => Promise<void> = async () => {
    const plain = this.socket;
    plain.off("data", this.onData);
    plain.off("end", this.onEnd);
    plain.off("drain", this.onDrain);
    plain.off("error", this.onError);
    plain.on("error", () => {}); // the TLS layer reports failures; the raw socket only closes
    const secured = await upgradeToTls(plain, this.tls as TlsContextProvider, {
      handshakeTimeout: this.limits.commandTimeout,
    });
    this.socket = secured;
    this.ctx.server.encrypted = new Date();
    this.ctx.server.tls = (this.tls as TlsContextProvider).describe(secured);
    this.listen(secured);
    this.updateFlow();
  };

  write(text: string): void {
    if (this.socket.destroyed || this.closing) return;
    this.socket.write(text);
    if (this.socket.writableNeedDrain && !this.writePaused) {
      // The client does not read its replies: stop reading its commands until it does.
      this.writePaused = true;
      this.updateFlow();
    }
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.socket.end();
    this.deadline = Date.now() + LINGER_MS;
  }

  pauseInput(): void {
    this.sessionPaused = true;
    this.updateFlow();
  }

  resumeInput(): void {
    this.sessionPaused = false;
    this.updateFlow();
  }

  commandCompleted(): void {
    if (!this.closing) this.deadline = Date.now() + this.limits.commandTimeout;
  }

  dataReceived(bytes: number): void {
    if (this.closing) return;
    const { commandTimeout, minDataRate } = this.limits;
    const now = Date.now();
    this.deadline = Math.min(now + commandTimeout, this.deadline + (bytes * 1000) / minDataRate);
  }

  private updateFlow(): void {
    if (this.socket.destroyed) return;
    if (this.sessionPaused || this.writePaused) this.socket.pause();
    else this.socket.resume();
  }

  private onTimer(): void {
    if (this.socket.destroyed) return;
    if (this.deadline <= Date.now()) {
      if (this.closing) {
        this.socket.destroy();
        return;
      }
      this.session.timeout(); // answers 421 and closes, which sets the linger deadline
    }
    this.timer = setTimeout(() => this.onTimer(), Math.max(1, this.deadline - Date.now()));
  }
}
