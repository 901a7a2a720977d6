/**
 * `mailgate serve --workers N|auto`: the primary listens and passes connections to N worker processes
 * (runWorkers), each of which opens its own store (Maildir file names are unique per process; a sink
 * gets one connection per worker) and serves as `mailgate serve` does in one process. Without --redis the
 * per-minute limits count in the primary, for all workers; with --metrics-listen the primary serves one
 * endpoint for all of them.
 */
import { runWorkers } from "../cluster/run-workers.js";
import { resolveSettings } from "../server/options.js";
import type { ServeFlags } from "./flags.js";
import { ServeOperations } from "./operations.js";
import { openStoringServer, perClientLimitWarning, type StoringServer } from "./serve.js";

export async function serveWithWorkers(flags: Omit<ServeFlags, "help">): Promise<void> {
  // Each worker logs on its own (text or JSON lines). With --metrics-listen, the observer in the options
  // counts the primary's refusals at accept; each worker's server gets an observer of its own.
  const operations = new ServeOperations(flags.operations, resolveSettings(flags.settings).loggerSeverity);
  const logger = operations.logger;
  let opened: StoringServer | undefined;
  const handle = await runWorkers({
    workers: flags.workers.workers,
    drainTimeout: flags.workers.drainTimeout,
    hangTimeout: flags.workers.hangTimeout,
    options: { logger, ...flags.settings, ...operations.serverOptions },
    async create(primary) {
      opened = await openStoringServer(flags, operations, primary);
      operations.reportTo(primary, opened.server);
      opened.server.onLogging(null, "info", `Worker ${process.pid} stores into ${opened.description}`);
      return opened.server;
    },
    reload: () => opened?.reload(),
  });
  if (handle.role === "worker") {
    await handle.stopped;
    await opened?.close();
    return;
  }
  await operations.startPrimary(handle).catch(async (error: unknown) => {
    await handle.stop(); // the metrics port is in use, say: nothing is served without it
    throw error;
  });
  const protocol = flags.settings.lmtp ? "LMTP" : "SMTP";
  logger.info(
    `mailgate is serving ${protocol} on ${handle.addresses.join(", ")} with ${handle.workerPids.length} workers (${handle.workerPids.join(", ")}); SIGUSR2 restarts them one by one`,
  );
  const unlimited = perClientLimitWarning(handle.addresses, resolveSettings(flags.settings));
  if (unlimited) logger.warn(unlimited);
  await handle.stopped;
  await operations.close();
  logger.info("mailgate stopped");
}
