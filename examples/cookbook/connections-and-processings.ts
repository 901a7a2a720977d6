/**
 * Cookbook: limits on connections and on sessions served at once (the seed's "Utilization of connections
 * and processings"). Beyond maxProcessings, a connection waits (without a greeting) for a free slot;
 * beyond maxConnections, it gets 421 and is closed. server.connections and server.processings tell the
 * utilisation at any time.
 */
import { SmtpServer, type SmtpServerOptions } from "mailgate";

export function createLimitedServer(options: SmtpServerOptions = {}): SmtpServer {
  return new SmtpServer({ maxProcessings: 4, maxConnections: 100, ...options });
}

/** The share of the limits in use, in percent, as the seed's README computes it. */
export function utilization(server: SmtpServer): { connections: number; processings: number } {
  return {
    connections: Math.round((100 * server.connections) / server.settings.maxConnections),
    processings: Math.round((100 * server.processings) / server.settings.maxProcessings),
  };
}

// Run directly (node connections-and-processings.js), it serves until Ctrl-C and logs the utilisation.
if (process.argv[1] === import.meta.filename) {
  const server = createLimitedServer({ ports: 2525 });
  await server.start();
  setInterval(() => console.log(utilization(server)), 10_000).unref();
}
