/**
 * The counts that decide whether a new connection is let in: maxConnections over all clients, and
 * maxConnectionsPerIp per client. A connection is counted from accept until its session ends (221 or 421
 * written) or its socket closes, whichever comes first; a client that keeps its socket open after that is
 * no longer counted (the connection lingers for a bounded time only).
 *
 * A client is known by clientKey(): behind a PROXY header that is the address the header names, known
 * only once the header is read, so a connection is counted in two steps (enter, then countClient).
 *
 * A connection accepted by another process (the primary of runWorkers, which counts every worker's
 * connections) enters with its CountedElsewhere: it is counted here too, so that a stop knows when every
 * session is over, but the limits are that process's to keep.
 */
import { clientKey } from "./client-key.js";

/** One connection's place in the counts; given back once (leave), however the connection ends. */
export interface AdmissionTicket {
  /** The client key counted for it, or "" while none is. */
  key: string;
  left: boolean;
  /** Present when another process keeps the limits for this connection. */
  elsewhere?: CountedElsewhere;
}

/** The counts another process keeps for one connection it accepted and passed on. */
export interface CountedElsewhere {
  /** Counts the connection for the client a PROXY header named (a client key); false when refused. */
  countClient(key: string): Promise<boolean>;
  /** The connection no longer counts (called once). */
  leave(): void;
}

export class Admission {
  private entered = 0;
  private readonly perClient = new Map<string, number>();

  constructor(
    private readonly maxConnections: number,
    /** 0 = no limit per client. */
    private readonly maxPerClient: number,
  ) {}

  /** Connections counted now. */
  get count(): number {
    return this.entered;
  }

  /** A ticket for one more connection, or null when maxConnections are counted already. */
  enter(): AdmissionTicket | null {
    if (this.entered >= this.maxConnections) return null;
    this.entered++;
    return { key: "", left: false };
  }

  /** A ticket for a connection that another process admitted and keeps the limits for. */
  enterCounted(elsewhere: CountedElsewhere): AdmissionTicket {
    this.entered++;
    return { key: "", left: false, elsewhere };
  }

  /**
   * Counts the ticket's connection for the client at `address` (an IP address; "" for a UNIX socket peer,
   * which is not counted); false when that client has its maximum already. A ticket counted elsewhere is
   * answered by that process, hence a promise.
   */
  countClient(ticket: AdmissionTicket, address: string): boolean | Promise<boolean> {
    if (this.maxPerClient === 0 || address === "" || ticket.left) return true;
    const key = clientKey(address);
    if (ticket.elsewhere) return ticket.elsewhere.countClient(key);
    const count = this.perClient.get(key) ?? 0;
    if (count >= this.maxPerClient) return false;
    this.perClient.set(key, count + 1);
    ticket.key = key;
    return true;
  }

  /** The connection's session is over, or its socket closed: its counts are given back (once). */
  leave(ticket: AdmissionTicket): void {
    if (ticket.left) return;
    ticket.left = true;
    this.entered--;
    ticket.elsewhere?.leave();
    if (ticket.key === "") return;
    const left = (this.perClient.get(ticket.key) ?? 1) - 1;
    if (left > 0) this.perClient.set(ticket.key, left);
    else this.perClient.delete(ticket.key);
  }
}
