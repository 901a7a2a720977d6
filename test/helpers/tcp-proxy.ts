/**
 * A loopback TCP proxy a test puts between mailgate and a broker (or any server), to cut, stall and
 * restore the path without touching the shared service: cut() resets every relayed connection and
 * refuses new ones, stall() keeps connections open but stops relaying bytes both ways (a broker that no
 * longer answers), restore() relays again and accepts new connections.
 */
import { connect, createServer, type Server, type Socket } from "node:net";

export class TcpProxy {
  private readonly pairs = new Set<[Socket, Socket]>();
  private state: "open" | "cut" | "stalled" = "open";

  private constructor(
    private readonly server: Server,
    private readonly target: { host: string; port: number },
  ) {}

  /** Starts a proxy on 127.0.0.1, port 0, to `host:port` (loopback only). */
  static async start(port: number, host = "127.0.0.1"): Promise<TcpProxy> {
    if (host !== "127.0.0.1" && host !== "::1" && host !== "localhost") {
      throw new Error(`TcpProxy relays to loopback only, not ${host}.`);
    }
    const server = createServer({ pauseOnConnect: true });
    const proxy = new TcpProxy(server, { host, port });
    server.on("connection", (client) => proxy.relay(client));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  /** The proxy's own port: give it to mailgate instead of the broker's. */
  get port(): number {
    const address = this.server.address();
    if (!address || typeof address !== "object") throw new Error("the proxy is not listening");
    return address.port;
  }

  /** Connections being relayed now. */
  get connections(): number {
    return this.pairs.size;
  }

  private relay(client: Socket): void {
    client.on("error", () => {}); // a reset from either side only ends the pair
    if (this.state === "cut") {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect({ host: this.target.host, port: this.target.port });
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    upstream.on("error", end);
    for (const socket of pair) socket.on("close", end);
    upstream.once("connect", () => {
      if (this.state !== "stalled") this.flow(pair);
    });
  }

  private flow([client, upstream]: [Socket, Socket]): void {
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Unpiped and paused: pipe() would resume a source whose destination drains. */
  private hold([client, upstream]: [Socket, Socket]): void {
    client.unpipe(upstream);
    upstream.unpipe(client);
    client.pause();
    upstream.pause();
  }

  /** Resets every relayed connection and refuses (resets) new ones until restore(). */
  cut(): void {
    this.state = "cut";
    for (const [client, upstream] of this.pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  /** Stops relaying bytes both ways; connections stay open, as with a broker that hangs. */
  stall(): void {
    this.state = "stalled";
    for (const pair of this.pairs) this.hold(pair);
  }

  /** Relays again, and accepts new connections. */
  restore(): void {
    const wasStalled = this.state === "stalled";
    this.state = "open";
    if (wasStalled) for (const pair of this.pairs) this.flow(pair);
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
