/**
 * What the spool tests share: a spool in a fresh directory (closed and removed after the test), a logger
 * that keeps its lines, and an HTTP endpoint the test switches between accepting, refusing, stalling and
 * resetting mid-request.
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import {
  decodeMailgateEnvelope,
  type Logger,
  type MessageStore,
  SinkSpool,
  type SinkSpoolOptions,
  type WireEnvelope,
} from "../../src/index.js";
import { silentLogger } from "../helpers/clients.js";
import type { Load } from "./sink-load.js";

/** A logger that keeps every line as "LEVEL message". */
export function keptLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (level: string) => (message: string) => {
    lines.push(`${level} ${message}`);
  };
  return { lines, debug: keep("DEBUG"), info: keep("INFO"), warn: keep("WARN"), error: keep("ERROR") };
}

export interface SpoolFixture {
  directory: string;
  /** Opens a spool on the directory; it is closed when the test ends, if the test did not. */
  open(sink: MessageStore, options?: SinkSpoolOptions): Promise<SinkSpool>;
}

/**
 * A fresh spool directory. When the test ends (first of its t.after hooks, which run in the order they
 * were registered), the spools opened through it are closed, then the directory is removed.
 */
export async function spoolFixture(t: TestContext): Promise<SpoolFixture> {
  const directory = await mkdtemp(join(tmpdir(), "mailgate-spool-"));
  const spools: SinkSpool[] = [];
  t.after(async () => {
    await Promise.all(spools.map((spool) => spool.close()));
    await rm(directory, { recursive: true, force: true });
  });
  return {
    directory,
    async open(sink, options = {}) {
      const spool = await SinkSpool.open(directory, sink, { logger: silentLogger, ...options });
      spools.push(spool);
      return spool;
    },
  };
}

/** The names of the files in `directory/sub`. */
export async function filesIn(directory: string, sub: string): Promise<string[]> {
  return readdir(join(directory, sub));
}

export type EndpointMode = "accept" | "refuse" | "stall" | "reset" | "reset-midway";

export interface Endpoint {
  url: string;
  /** What the endpoint does with the next requests. */
  mode: EndpointMode;
  /** Every message it accepted, in the order it did. */
  accepted: { id: string; envelope: WireEnvelope; body: Buffer }[];
  /** Requests it refused (500), stalled or reset. */
  turnedAway: number;
}

/**
 * An HTTP endpoint on 127.0.0.1, port 0: "accept" answers 200 and records the message; "refuse" reads it
 * and answers 500; "stall" reads it and never answers; "reset" resets the connection at once,
 * "reset-midway" after 64 KB of the message.
 * Closed when the test ends.
 */
export async function startEndpoint(t: TestContext): Promise<Endpoint> {
  const endpoint: Endpoint = { url: "", mode: "accept", accepted: [], turnedAway: 0 };
  const server = createServer((req, res) => {
    const mode = endpoint.mode;
    if (mode === "reset") {
      endpoint.turnedAway += 1;
      req.socket.resetAndDestroy();
      return;
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    req.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      bytes += chunk.length;
      if (mode === "reset-midway" && bytes >= 64 * 1024 && !req.socket.destroyed) {
        endpoint.turnedAway += 1;
        req.socket.resetAndDestroy();
      }
    });
    req.on("end", () => {
      if (mode === "accept") {
        endpoint.accepted.push({
          id: String(req.headers["mailgate-message-id"]),
          envelope: decodeMailgateEnvelope(req.headers["mailgate-envelope"] as string),
          body: Buffer.concat(chunks),
        });
        res.writeHead(200).end();
      } else if (mode === "refuse") {
        endpoint.turnedAway += 1;
        res.writeHead(500).end();
      } else if (mode === "stall") {
        endpoint.turnedAway += 1;
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  endpoint.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/inbound`;
  return endpoint;
}

/**
 * Conditions for waitFor() while a load runs through a spool: `accepted(n)` and `spooled(n)` hold once n
 * more messages were accepted or spooled than when they were asked for; `drained()` once the spool is
 * empty and the sink up again.
 */
export function spoolProgress(load: Load, spool: SinkSpool) {
  return {
    accepted(more: number): () => boolean {
      const target = load.accepted.size + more;
      return () => load.accepted.size >= target;
    },
    spooled(more: number): () => boolean {
      const target = spool.stats.spooled + more;
      return () => spool.stats.spooled >= target;
    },
    drained: () => spool.stats.messages === 0 && spool.stats.sink === "up",
  };
}
