/**
 * What NatsSink does once per connection, apart from publishing: loads the @nats-io clients (on the first
 * start only, see nats-client.ts), builds the connection's options, creates the stream and opens the
 * Object Store bucket that `declare` and `bucket` ask for.
 */
import { readFileSync } from "node:fs";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { ObjectStore } from "@nats-io/obj";
import type { Authenticator, NodeConnectionOptions } from "@nats-io/transport-node";
import type { Logger } from "../server/options.js";
import type { NatsDeclareOptions, NatsSettings } from "./nats-options.js";
import { describeError } from "./sink-error.js";

const NANOS_PER_MS = 1_000_000;

type NatsClient = typeof import("./nats-client.js");

/** The @nats-io clients, once a sink's start() has loaded them (see nats-client.ts). */
let client: NatsClient | undefined;

export async function loadClient(): Promise<NatsClient> {
  client ??= await import("./nats-client.js");
  return client;
}

/** The clients for code that runs only after start() (publishing, declaring, error classification). */
export function loaded(): NatsClient {
  if (!client) throw new Error("NatsSink: the NATS clients are used before start() loaded them.");
  return client;
}

/** nats.js's options for `settings`; `reconnectDelay` gives each reconnect's delay. */
export function connectionOptions(
  settings: NatsSettings,
  reconnectDelay: () => number,
): NodeConnectionOptions {
  const { token, user, pass, credsFile } = settings.auth;
  const authenticator: Authenticator[] = [];
  if (credsFile) authenticator.push(loaded().credsAuthenticator(() => readFileSync(credsFile)));
  return {
    servers: settings.servers,
    name: settings.name,
    timeout: settings.connectTimeout,
    reconnect: true,
    maxReconnectAttempts: -1,
    waitOnFirstConnect: false,
    // Credentials may be fixed after a failure (a rotated creds file): keep trying, never give up.
    ignoreAuthErrorAbort: true,
    reconnectDelayHandler: reconnectDelay,
    pingInterval: settings.pingInterval,
    maxPingOut: 2,
    // No Error (with its stack) made ahead of every request in case it fails: a cost per message. A failure
    // still has its name, message and cause, which are all the sink reads.
    noAsyncTraces: true,
    ...(token ? { token } : {}),
    ...(user ? { user, pass } : {}),
    ...(authenticator.length ? { authenticator } : {}),
    ...(settings.tls ? { tls: { ...settings.tls } } : {}),
  };
}

/** Creates the stream `declare` names unless it exists (an existing one is kept as it is). */
export async function declareStream(
  jsm: JetStreamManager,
  declare: Required<NatsDeclareOptions>,
  logger: Logger,
): Promise<void> {
  const existing = await jsm.streams.info(declare.stream).catch(() => null);
  if (existing) {
    logger.info(`NATS sink: stream ${declare.stream} exists, kept as it is`);
  } else {
    // Only options nats-server 2.9 knows (no compression, metadata, first_seq or subject transform).
    await jsm.streams.add({
      name: declare.stream,
      subjects: declare.subjects,
      storage: loaded().StorageType.File,
      discard: loaded().DiscardPolicy.New, // a full stream refuses new mail rather than dropping accepted mail
      duplicate_window: declare.duplicateWindow * NANOS_PER_MS,
      max_age: declare.maxAge * NANOS_PER_MS,
      max_bytes: declare.maxBytes,
      max_msgs: declare.maxMsgs,
      num_replicas: declare.replicas,
    });
    logger.info(`NATS sink: created stream ${declare.stream} (${declare.subjects.join(", ")})`);
  }
}

/** Opens the claim-check bucket, or creates it when the sink declares what it needs. */
export async function openBucket(
  js: JetStreamClient,
  bucket: string,
  declare: Required<NatsDeclareOptions> | undefined,
): Promise<ObjectStore> {
  const objm = new (loaded().Objm)(js);
  if (!declare) {
    return objm.open(bucket).catch((error: unknown) => {
      throw new Error(
        `the Object Store bucket "${bucket}" for large messages cannot be opened (${describeError(error)}); create it, let the sink declare it, or set bucket: null`,
      );
    });
  }
  return objm.create(bucket, {
    storage: loaded().StorageType.File,
    ttl: declare.bucketTtl * NANOS_PER_MS,
    replicas: declare.replicas,
    max_bytes: declare.bucketMaxBytes,
  });
}
