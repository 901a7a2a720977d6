/**
 * The program of test/cluster/hang-watch.test.ts: runWorkers with two workers whose onRcptTo never returns
 * for hang@example.com (a loop that blocks the worker's event loop), the watch set by HANG_TIMEOUT; with
 * BUSY_CONNECT_MS, each connection also costs its worker that many milliseconds of blocking work.
 */
import { runWorkers, SmtpServer, type SmtpServerOptions } from "../../src/index.js";

// Only when hang-watch.test.ts runs it: the test runner, which loads every file under build/test/, gets
// nothing to run from it.
if (process.env.HANG_TIMEOUT !== undefined) {
  const options: SmtpServerOptions = { hosts: "127.0.0.1", ports: 0, loggerSeverity: "info" };
  const busyConnect = Number(process.env.BUSY_CONNECT_MS ?? 0);
  const handle = await runWorkers({
    workers: 2,
    hangTimeout: Number(process.env.HANG_TIMEOUT),
    options,
    create: () =>
      new SmtpServer({
        ...options,
        onConnect() {
          // A worker that is slow but turning (BUSY_CONNECT_MS of work for every connection).
          const until = performance.now() + busyConnect;
          while (performance.now() < until);
        },
        onRcptTo(_ctx, address) {
          if (address === "hang@example.com") for (;;);
        },
        onMessageData() {
          return `Ok: worker ${process.pid}`;
        },
      }),
  });
  if (handle.role === "primary") {
    console.log(`serving on ${handle.addresses.join(", ")} with workers ${handle.workerPids.join(", ")}`);
    let last = handle.workerPids.join(", ");
    const watch = setInterval(() => {
      const now = handle.workerPids.join(", ");
      if (now !== last) console.log(`workers now ${now}`);
      last = now;
    }, 50);
    await handle.stopped;
    clearInterval(watch);
  }
}
