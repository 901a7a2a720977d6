/**
 * Builds and starts the sink that `mailgate serve --sink` asks for, reading its secret and CA file, and
 * puts the --spool in front of it. Without a spool, a sink that cannot be reached at start is one sentence
 * (the caller exits 1): better than a server that answers 451 to everyone.
 */
import { readFile } from "node:fs/promises";
import { connect, isIP } from "node:net";
import { tmpdir } from "node:os";
import { connect as tlsConnect } from "node:tls";
import type { Logger } from "../server/options.js";
import { AmqpSink } from "../sinks/amqp.js";
import { HttpSink } from "../sinks/http.js";
import { NatsSink } from "../sinks/nats.js";
import { natsSinkOptionsFromUrl } from "../sinks/nats-url.js";
import { describeError } from "../sinks/sink-error.js";
import { SinkSpool } from "../sinks/spool.js";
import { stagingStore } from "../sinks/staging.js";
import type { MessageStore } from "../store/store.js";
import { redactedSinkUrl, type SinkFlags } from "./sink-flags.js";

/** How long the start-up check may take to reach an HTTP endpoint. */
const HTTP_REACH_TIMEOUT = 5_000;

export interface OpenedSink {
  store: MessageStore;
  /** What the start line says the messages go to (never a password). */
  description: string;
}

/**
 * The sink the flags ask for, started; behind a SinkSpool with --spool (then a sink unreachable at start
 * is a warning: it keeps trying, and the spool takes the messages meanwhile); streamed messages staged in
 * --sink-stage-dir before either sees them (src/sinks/staging.ts).
 */
export async function openSink(
  flags: SinkFlags,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): Promise<OpenedSink> {
  const opened = await openSpooledSink(flags, env, logger);
  try {
    const staging = {
      ...(flags.windowBytes !== undefined ? { maxBytes: flags.windowBytes } : {}),
      ...(flags.publishTimeout !== undefined ? { waitTimeout: flags.publishTimeout } : {}),
    };
    return { ...opened, store: await stagingStore(opened.store, flags.stageDirectory ?? tmpdir(), staging) };
  } catch (error) {
    await opened.store.close?.();
    throw new Error(
      `Cannot make a staging directory in ${flags.stageDirectory ?? tmpdir()} (--sink-stage-dir): ${describeError(error)}.`,
    );
  }
}

async function openSpooledSink(
  flags: SinkFlags,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): Promise<OpenedSink> {
  const opened = await openBareSink(flags, env, logger);
  if (!flags.spool) return opened;
  const { directory, maxBytes, maxMessages } = flags.spool;
  try {
    const spool = await SinkSpool.open(directory, opened.store, {
      logger,
      ...(maxBytes !== undefined ? { maxBytes } : {}),
      ...(maxMessages !== undefined ? { maxMessages } : {}),
    });
    return { store: spool, description: `${opened.description}, spooling outages into ${directory}` };
  } catch (error) {
    await opened.store.close?.();
    throw error;
  }
}

async function openBareSink(flags: SinkFlags, env: NodeJS.ProcessEnv, logger: Logger): Promise<OpenedSink> {
  const start = { retryInBackground: flags.spool !== undefined };
  const secret = await readSecret(flags, env);
  const ca = flags.caFile === undefined ? undefined : await readFileNamed(flags.caFile, "--sink-ca-file");
  // (NATS reads its CA file itself; reading it here too tells a missing file in the same words.)
  const where = redactedSinkUrl(flags.url);
  if (flags.passwordOnCommandLine) {
    logger.warn(
      "The --sink URL holds a password, which ps and the shell history show: give it with --sink-secret-file or MAILGATE_SINK_SECRET, or the whole URL in MAILGATE_SINK.",
    );
  }
  if (flags.kind === "amqp") {
    const url = new URL(flags.url.href);
    if (secret !== undefined) url.password = encodeURIComponent(secret.toString("utf8"));
    const sink = await AmqpSink.open(
      {
        url: url.href,
        exchange: flags.exchange ?? "",
        logger,
        ...(flags.routingKey !== undefined ? { routingKey: flags.routingKey } : {}),
        ...(flags.declareQueue !== undefined ? { declare: { queue: flags.declareQueue } } : {}),
        ...(flags.publishTimeout !== undefined ? { publishTimeout: flags.publishTimeout } : {}),
        ...(flags.window !== undefined ? { window: flags.window } : {}),
        ...(ca ? { tls: { ca } } : {}),
      },
      start,
    );
    return { store: sink, description: `RabbitMQ ${sink.redactedUrl}, exchange "${sink.exchange}"` };
  }
  if (flags.kind === "nats") {
    const url = new URL(flags.url.href);
    if (secret !== undefined && url.username !== "")
      url.password = encodeURIComponent(secret.toString("utf8"));
    const options = natsSinkOptionsFromUrl(url.href);
    const sink = await NatsSink.open(
      {
        ...options,
        logger,
        ...(secret !== undefined && url.username === "" ? { token: secret.toString("utf8") } : {}),
        ...(flags.publishTimeout !== undefined ? { publishTimeout: flags.publishTimeout } : {}),
        ...(flags.window !== undefined ? { window: flags.window } : {}),
        ...(flags.caFile !== undefined ? { tls: { ...options.tls, caFile: flags.caFile } } : {}),
      },
      start,
    );
    return { store: sink, description: `NATS JetStream ${sink.redactedServers}, subject "${sink.subject}"` };
  }
  const sink = new HttpSink({
    url: flags.url,
    secret: secret as Buffer, // parseSinkFlags requires one for http
    ...(flags.publishTimeout !== undefined ? { requestTimeout: flags.publishTimeout } : {}),
    ...(flags.window !== undefined ? { maxInFlight: flags.window, maxSockets: flags.window } : {}),
    ...(ca ? { tls: { ca } } : {}),
  });
  try {
    await reach(flags.url, ca);
  } catch (error) {
    const why = `Cannot reach the HTTP sink at ${where}: ${(error as Error).message}.`;
    if (!start.retryInBackground) {
      await sink.close();
      throw new Error(why);
    }
    logger.warn(`${why} The spool takes the messages until it answers.`);
  }
  return { store: sink, description: `HTTP endpoint ${where}` };
}

async function readSecret(flags: SinkFlags, env: NodeJS.ProcessEnv): Promise<Buffer | undefined> {
  if (flags.secret === undefined) return undefined;
  const raw =
    "file" in flags.secret
      ? await readFileNamed(flags.secret.file, "--sink-secret-file")
      : Buffer.from(env[flags.secret.env] ?? "");
  // A file written by `echo` ends in a newline that is not part of the secret.
  const secret = raw.subarray(0, raw.length - (raw.at(-1) === 0x0a ? (raw.at(-2) === 0x0d ? 2 : 1) : 0));
  if (secret.length === 0) {
    const source = "file" in flags.secret ? `--sink-secret-file ${flags.secret.file}` : flags.secret.env;
    throw new Error(`The sink secret from ${source} is empty.`);
  }
  return secret;
}

async function readFileNamed(path: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new Error(
      `Cannot read ${flag} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`,
    );
  }
}

/**
 * Opens a connection to the endpoint (and, for https, completes the TLS handshake, so that a certificate
 * the sink would refuse is told now) and closes it. Sends no request: the endpoint sees no message.
 */
function reach(url: URL, ca: Buffer | undefined): Promise<void> {
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const https = url.protocol === "https:";
  const port = Number(url.port || (https ? 443 : 80));
  return new Promise((resolve, reject) => {
    const socket = https
      ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ...(ca ? { ca } : {}) }, () =>
          done(),
        )
      : connect({ host, port }, () => done());
    const timer = setTimeout(
      () => done(new Error(`no connection within ${HTTP_REACH_TIMEOUT} ms`)),
      HTTP_REACH_TIMEOUT,
    );
    socket.on("error", (error) => done(error));
    function done(error?: Error) {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve();
    }
  });
}
