/**
 * Connections refused at accept, before any session: the 421 replies (the same whether the server itself
 * or the primary of runWorkers refuses), and the sockets that wait briefly for their client to hang up.
 */
import type { Socket } from "node:net";
import { formatReply } from "../protocol/replies.js";

/** Milliseconds a refused socket (421 at accept) waits for its client to hang up before it is closed. */
const REFUSED_LINGER_MS = 2000;

export class Refusals {
  /** Sockets refused with a 421, waiting briefly for their client to hang up (see end). */
  readonly waiting = new Set<Socket>();
  private readonly shuttingDownReply: string;

  constructor(
    private readonly hostname: string,
    /** Refused sockets that may wait at once: maxConnections (beyond, one closes once its reply is out). */
    private readonly maxWaiting: number,
    /** A refused socket has closed. */
    private readonly closed: () => void,
  ) {
    this.shuttingDownReply = formatReply(421, "4.3.2", `${hostname} Service shutting down, try again later`);
  }

  /** maxConnections reached: the seed's answer, the client should retry later. */
  tooBusy(socket: Socket, implicitTls: boolean): void {
    this.refuse(socket, implicitTls, "Service too busy or not available, try again later");
  }

  /** maxConnectionsPerIp reached for the client. */
  tooManyFromClient(socket: Socket, implicitTls: boolean): void {
    this.refuse(socket, implicitTls, "Too many connections from your address, try again later");
  }

  /** Accepted just as the server stops: tell the client, as RFC 5321 3.8 asks, rather than reset. */
  shuttingDown(socket: Socket, implicitTls: boolean): void {
    if (implicitTls) socket.destroy();
    else this.end(socket, this.shuttingDownReply);
  }

  /** Closes every waiting socket now (the end of a stop). */
  destroyAll(): void {
    for (const socket of this.waiting) socket.destroy();
  }

  /** 421 and close; on an implicit TLS port before the handshake only a close, as plaintext would be noise. */
  private refuse(socket: Socket, implicitTls: boolean, text: string): void {
    if (implicitTls) socket.destroy();
    else this.end(socket, formatReply(421, "4.7.0", `${this.hostname} ${text}`));
  }

  /**
   * Writes a refusal and ends the socket, which closes once the client hangs up too (what it sends
   * meanwhile is read and dropped, so that its FIN is seen), or after REFUSED_LINGER_MS, whichever comes
   * first. A refused socket counts against no limit, so no more than maxWaiting of them wait at once:
   * beyond, one is destroyed as soon as its reply is written.
   */
  private end(socket: Socket, reply: string): void {
    socket.end(reply);
    socket.resume();
    this.waiting.add(socket);
    const timer = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
    socket.once("close", () => {
      clearTimeout(timer);
      this.waiting.delete(socket);
      this.closed();
    });
    if (this.waiting.size > this.maxWaiting) {
      socket.once("finish", () => socket.destroy());
    }
  }
}
