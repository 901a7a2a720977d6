/**
 * Your own server on every core: `node build/examples/every-core.js` runs the primary, which listens on
 * 127.0.0.1:2525 (PORT), keeps maxConnections and maxConnectionsPerIp over all workers, and starts one
 * worker per core (WORKERS) that runs this same file and serves with the class below, storing into the
 * Maildir ./mail (MAILDIR). `kill -USR2 <primary>` restarts the workers one by one from the code on
 * disk without refusing anyone; SIGTERM or Ctrl-C stops them all gracefully. See docs/workers.md.
 * (In your project, import from "mailgate" instead of "../src/index.js".)
 */
import type { Readable } from "node:stream";
import {
  MaildirStore,
  runWorkers,
  type SessionContext,
  SmtpError,
  SmtpServer,
  type SmtpServerOptions,
} from "../src/index.js";

export class StoringSmtpd extends SmtpServer {
  constructor(
    options: SmtpServerOptions,
    private readonly store: MaildirStore,
  ) {
    super(options);
  }

  override onRcptTo(_ctx: SessionContext, address: string): void {
    if (address.toLowerCase() === "blocked@example.com") throw SmtpError.code(550);
  }

  override async onMessageStream(ctx: SessionContext, stream: Readable): Promise<string> {
    const receipt = await this.store.deliver({ from: ctx.envelope.from, to: [...ctx.envelope.to] }, stream);
    return `Ok: stored as ${receipt.id} by worker ${process.pid}`;
  }
}

const options: SmtpServerOptions = {
  hosts: "127.0.0.1",
  ports: process.env.PORT ?? "2525",
  maxConnections: 200,
  maxConnectionsPerIp: 20,
};
let store: MaildirStore | undefined;
const handle = await runWorkers({
  workers: process.env.WORKERS ? Number(process.env.WORKERS) : "auto",
  options,
  // Runs in each worker: every worker opens its own store (Maildir names are unique per process).
  async create() {
    store = await MaildirStore.open(process.env.MAILDIR ?? "mail");
    return new StoringSmtpd(options, store);
  },
});
if (handle.role === "worker") {
  await handle.stopped; // retired by a rolling restart, or the whole stop
  await store?.close();
} else {
  console.log(`serving on ${handle.addresses.join(", ")} with workers ${handle.workerPids.join(", ")}`);
  await handle.stopped;
  console.log("stopped");
}
