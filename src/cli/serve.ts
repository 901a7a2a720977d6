/**
 * `mailgate serve`: a ready server that stores every accepted message durably (in a Maildir, or in the
 * broker or endpoint of --sink) before it answers 250, prints what it does, and stops gracefully on
 * SIGINT/SIGTERM.
 */
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import type { PrimaryServices } from "../cluster/run-workers.js";
import type { SessionContext } from "../protocol/context.js";
import { SmtpError } from "../protocol/errors.js";
import { receivedHeader } from "../protocol/received.js";
import { batchedStdout } from "../server/batched-output.js";
import { lineLogger } from "../server/logger.js";
import { type Logger, OPTION_SPECS, resolveSettings } from "../server/options.js";
import type { RateLimitName } from "../server/rate-limits.js";
import { RefusalWarnings } from "../server/refusal-warnings.js";
import { reloadTlsCertificates } from "../server/reload-tls.js";
import { SmtpServer, type SmtpServerOptions } from "../server/server.js";
import { SINK_TEMPORARY_TEXT } from "../sinks/sink-error.js";
import { MaildirStore } from "../store/maildir.js";
import { sessionFacts } from "../store/session-facts.js";
import type { DeliveryReceipt, MessageStore, StoreEnvelope } from "../store/store.js";
import { WholeMessage } from "../store/whole-message.js";
import { Accounts, PasswordChecksBusy } from "./accounts.js";
import { SERVE_DEFAULTS, type ServeFlags } from "./flags.js";
import { type OpenedLimits, openLimits } from "./limits.js";
import { openSink } from "./open-sink.js";
import { ServeOperations } from "./operations.js";
import { RecipientPolicy } from "./recipient-policy.js";

/** Tells this process's message ids from another instance's, made in the same millisecond. */
const INSTANCE = randomBytes(3).toString("hex");

/**
 * Builds the server that stores into `store`; exported so tests can run it in-process.
 * @param options the server's options (settings, logger, observer...)
 * @param extras AUTH accounts, the recipient policy, the per-address rate limits
 */
export function createStoringServer(
  options: SmtpServerOptions,
  store: MessageStore,
  {
    accounts,
    recipients,
    limits,
    storeFailures: givenStoreFailures,
  }: {
    accounts?: Accounts;
    recipients?: RecipientPolicy;
    limits?: Omit<OpenedLimits, "close">;
    /** Where the store's 451s are logged (WARN, bounded); the caller flushes it when it stops. */
    storeFailures?: RefusalWarnings;
  } = {},
): SmtpServer {
  let sequence = 0;
  /** The id of each session's message under way, from its Received header to the store. */
  const messageIds = new WeakMap<SessionContext, string>();
  /** The sessions whose message under way went to onMessageStream (past bufferMessagesUpTo). */
  const streamed = new WeakSet<SessionContext>();
  const envelopeOf = (ctx: SessionContext): StoreEnvelope => ({
    from: ctx.envelope.from,
    to: [...ctx.envelope.to],
    id: messageIds.get(ctx),
    session: sessionFacts(ctx),
  });
  // A store's temporary failure (a sink that cannot take the message, or refused it: a wrong secret, an
  // unroutable key) is the operator's to see at the default level, bounded as floods of refusals are.
  const storeFailures =
    givenStoreFailures ?? new RefusalWarnings((text) => server.onLogging(null, "warn", text));
  const deliver = async (ctx: SessionContext, message: AsyncIterable<Buffer>): Promise<string> => {
    let receipt: DeliveryReceipt;
    try {
      receipt = await store.deliver(envelopeOf(ctx), message);
    } catch (error) {
      // Only the store's own failures (the sinks answer them with SINK_TEMPORARY_TEXT): a message the session
      // itself aborted (RSET, the client gone) rejects with its own error, which is no news to the operator.
      if (error instanceof SmtpError && error.replyText === SINK_TEMPORARY_TEXT) {
        storeFailures.refused(ctx.server.remoteIp, `its message got ${error.message}`);
      }
      throw error;
    }
    server.onLogging(
      ctx,
      "info",
      `Stored ${receipt.id} from <${ctx.envelope.from}> for ${ctx.envelope.to.length} recipient(s), ${receipt.size} bytes`,
    );
    return `Ok: stored as ${receipt.id}`;
  };
  const server = new SmtpServer({
    logger: lineLogger(batchedStdout()), // a server program's log is its output, written once per turn
    ...options,
    maxMessageSize: sizeLimit(options.maxMessageSize, store.maxMessageSize),
    bufferMessagesUpTo: options.bufferMessagesUpTo ?? SERVE_DEFAULTS.bufferMessagesUpTo,
    ...limits?.hooks,
    ...(limits?.authFailureLimiter && { authFailureLimiter: limits.authFailureLimiter }),
    ...(accounts
      ? {
          async onAuth(_ctx, _authorizationId, user, secret, mechanism) {
            // Only password mechanisms: hashed accounts cannot answer CRAM-MD5 or check XOAUTH2 tokens.
            if (mechanism !== "PLAIN" && mechanism !== "LOGIN") throw SmtpError.code(535);
            const valid = await accounts.verify(user, secret).catch((error: unknown) => {
              // Too many checks waiting (an AUTH flood): a temporary failure now, never an unbounded queue.
              if (error instanceof PasswordChecksBusy) throw SmtpError.code(454, error.message);
              throw error;
            });
            if (!valid) throw SmtpError.code(535);
            return user;
          },
        }
      : {}),
    ...(recipients
      ? {
          onRcptTo(_ctx, address) {
            recipients.check(address);
          },
        }
      : {}),
    onMessageDataStart(ctx) {
      streamed.delete(ctx);
      sequence = (sequence + 1) % 0x100000000;
      // Unique across instances too (the instance part), so that a store or broker may use it as the
      // message's id: a retried delivery of the same message is then recognisable downstream.
      const id =
        `${Date.now().toString(36)}${sequence.toString(36).padStart(7, "0")}${INSTANCE}`.toUpperCase();
      messageIds.set(ctx, id);
      ctx.message.write(receivedHeader(ctx, { hostname: server.settings.hostname, id }));
    },
    // A message past bufferMessagesUpTo is streamed to the store as it arrives...
    onMessageStream(ctx, stream) {
      streamed.add(ctx);
      return deliver(ctx, stream);
    },
    // ...a smaller one is handed over whole once it is complete.
    onMessageData(ctx) {
      if (streamed.has(ctx)) return undefined; // onMessageStream's result stands
      return deliver(ctx, new WholeMessage(ctx.message.data));
    },
  });
  return server;
}

/**
 * SIZE advertises the smaller of maxMessageSize and what the store can take (a broker's maximum message
 * size); 0 (unlimited) yields to the store's limit.
 */
function sizeLimit(configured: number | undefined, storeLimit: number | undefined): number {
  const limit =
    configured ?? (OPTION_SPECS.find((spec) => spec.name === "maxMessageSize")?.default as number);
  if (storeLimit === undefined) return limit;
  return limit === 0 ? storeLimit : Math.min(limit, storeLimit);
}

/** The store the flags ask for: the sink, or else the Maildir; and how the start line names it. */
async function openStore(
  flags: Pick<ServeFlags, "maildir" | "sink">,
  logger: Logger,
): Promise<{ store: MessageStore; description: string }> {
  if (flags.sink) return openSink(flags.sink, process.env, logger);
  const directory = resolve(flags.maildir);
  const store = await MaildirStore.open(directory);
  return { store, description: `Maildir ${directory}` };
}

export interface StoringServer {
  server: SmtpServer;
  /** How the start line names the store. */
  description: string;
  /**
   * SIGHUP: the TLS certificate files (renewed by ACME) and the recipients file read again; a failed
   * reload keeps what was in force.
   */
  reload(): void;
  /** Closes what was opened for the server: the limits' connection, the store. */
  close(): Promise<void>;
}

/**
 * Opens the store, policy and limits the flags ask for and builds the server on them (not started), with
 * the logger, metrics observer and timed store of `operations`. In a worker, `primary` keeps the counts
 * of the per-minute limits (unless --redis does).
 */
export async function openStoringServer(
  {
    settings,
    maildir,
    authUsers,
    acceptDomains,
    recipients,
    limits: limitFlags,
    sink,
  }: Omit<ServeFlags, "help" | "workers" | "operations">,
  operations: ServeOperations,
  primary?: PrimaryServices,
): Promise<StoringServer> {
  const logger = operations.logger;
  const { store: opened, description } = await openStore({ maildir, sink }, logger);
  const store = operations.watch(opened);
  let server: SmtpServer;
  let policy: RecipientPolicy | undefined;
  let limits: OpenedLimits | undefined;
  // Bounded, as the refusals at accept: a client flooding past its limit must not write a line each time.
  const refusalWarnings = new RefusalWarnings((message) => server.onLogging(null, "info", message));
  const storeFailures = new RefusalWarnings((message) => server.onLogging(null, "warn", message));
  try {
    const accounts = authUsers ? await Accounts.load(authUsers) : undefined;
    policy = await RecipientPolicy.open(acceptDomains, recipients);
    const refused = (ctx: SessionContext, name: RateLimitName) => {
      refusalWarnings.refused(ctx.server.remoteIp, `over the ${name}-per-minute limit (421 4.7.0)`);
      const reason = name === "connections" ? "connection-rate" : "message-rate";
      operations.serverOptions.observer?.connectionRefused?.(reason, ctx.server.remoteIp);
    };
    limits = await openLimits(limitFlags, resolveSettings(settings), logger, refused, primary);
    server = createStoringServer({ logger, ...settings, ...operations.serverOptions }, store, {
      accounts,
      recipients: policy,
      limits,
      storeFailures,
    });
  } catch (error) {
    // A bad option or accounts file: what was opened for nothing is closed before the error is told.
    await limits?.close();
    await store.close?.();
    throw error;
  }
  const openedLimits = limits;
  return {
    server,
    description,
    reload() {
      reloadTlsCertificates(server);
      if (recipients !== undefined) {
        policy?.reload().then(
          () => server.onLogging(null, "info", `Recipients reloaded from ${recipients}`),
          (error: Error) => server.onLogging(null, "error", `${error.message} The previous recipients stay.`),
        );
      }
    },
    async close() {
      refusalWarnings.flush();
      storeFailures.flush();
      await openedLimits.close();
      await store.close?.();
    },
  };
}

/**
 * The warning for a server reachable from other machines while one client may hold every processing slot
 * (maxConnectionsPerIp 0, the default), or undefined. Listeners on loopback or a UNIX socket need none.
 */
export function perClientLimitWarning(
  addresses: readonly string[],
  settings: { maxConnectionsPerIp: number; maxProcessings: number },
): string | undefined {
  if (settings.maxConnectionsPerIp !== 0) return undefined;
  // server.addresses: "ip:port", "[ipv6]:port", "unix:path".
  const reachable = addresses.filter((address) => {
    const host = address.startsWith("[") ? address.slice(1, address.indexOf("]")) : address.split(":")[0];
    return !/^(127\.|::1$|::ffff:127\.|unix$)/.test(host ?? "");
  });
  if (reachable.length === 0) return undefined;
  return `Listening on ${reachable.join(", ")} with --max-connections-per-ip 0: one client address may hold all ${settings.maxProcessings} processing slots; for a server others can reach, set it (for example to ${Math.max(1, Math.floor(settings.maxProcessings / 2))}, as Postfix's smtpd_client_connection_count_limit does)`;
}

/** `mailgate serve` in one process (--workers 1, the default). */
export async function serve(flags: Omit<ServeFlags, "help" | "workers">): Promise<void> {
  const operations = new ServeOperations(flags.operations, resolveSettings(flags.settings).loggerSeverity);
  const opened = await openStoringServer(flags, operations);
  const { server, description } = opened;
  // Signal handlers go in before anything is printed: a supervisor that reads "serving" and at once
  // sends SIGTERM must get a graceful stop, not the default death.
  let stopRequested: (signal: string) => void = () => {};
  const stopSignal = new Promise<string>((resolve) => {
    stopRequested = resolve;
  });
  // The first SIGINT or SIGTERM stops gracefully; then both get their default action again, so that a
  // second one of either kills at once.
  const onStopSignal = (signal: NodeJS.Signals) => {
    process.off("SIGINT", onStopSignal);
    process.off("SIGTERM", onStopSignal);
    stopRequested(signal);
  };
  process.on("SIGINT", onStopSignal);
  process.on("SIGTERM", onStopSignal);
  process.on("SIGHUP", () => opened.reload());

  await server.start().catch(async (error: unknown) => {
    await opened.close(); // the port is in use, say: nothing was served
    throw error;
  });
  await operations.start(server).catch(async (error: unknown) => {
    await server.stop(); // the metrics port is in use, say: nothing is served without it
    await opened.close();
    throw error;
  });
  server.onLogging(
    null,
    "info",
    `mailgate is serving ${server.settings.lmtp ? "LMTP" : "SMTP"} on ${server.addresses.join(", ")} into ${description}`,
  );
  const unlimited = perClientLimitWarning(server.addresses, server.settings);
  if (unlimited) server.onLogging(null, "warn", unlimited);
  const signal = await stopSignal;
  server.onLogging(null, "info", `${signal} received: stopping gracefully`);
  await server.stop();
  await operations.close();
  await opened.close();
  server.onLogging(null, "info", "mailgate stopped");
}
