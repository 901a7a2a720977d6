/**
 * NatsSink's options: what a caller gives (NatsSinkOptions), checked once into the settings the sink runs
 * with, each bad value one sentence naming its option.
 */
import { defaultLogger } from "../server/logger.js";
import type { Logger } from "../server/options.js";
import type { StoreEnvelope } from "../store/store.js";
import { DOMAIN_PLACEHOLDER, domainTemplate } from "./domain-template.js";
import { reconnectDelay } from "./reconnect-backoff.js";
import { positiveInteger } from "./sink-options.js";

/** What the sink creates on start for a quick start (nothing that needs nats-server 2.10). */
export interface NatsDeclareOptions {
  /** The stream to create (file storage, discard new) when it does not exist; an existing one is kept as it is. */
  stream: string;
  /** Its subjects. Default: the subject template up to `{domain}`, then `>` ("mail.{domain}" → "mail.>"). */
  subjects?: string[];
  /** Milliseconds JetStream remembers a Nats-Msg-Id to drop a repeated publish. Default 600,000 (10 min). */
  duplicateWindow?: number;
  /** Milliseconds a message is kept at most; 0 keeps it until a limit or a consumer removes it. Default 0. */
  maxAge?: number;
  /** Bytes the stream holds at most (then it refuses new messages); -1 unlimited. Default -1. */
  maxBytes?: number;
  /** Messages the stream holds at most (then it refuses new messages); -1 unlimited. Default -1. */
  maxMsgs?: number;
  /** Replicas of the stream and the bucket (a cluster). Default 1. */
  replicas?: number;
  /** Milliseconds the bucket keeps an object unless deleted before; 0 forever. Default 0. */
  bucketTtl?: number;
  /** Bytes the bucket holds at most (then it refuses new objects); -1 unlimited. Default -1. */
  bucketMaxBytes?: number;
}

/** TLS to the server: a `tls://` server URL, or this option, makes the connection require TLS. */
export interface NatsTlsOptions {
  /** PEM text of the CA, the client certificate and its key; or the paths of files holding them. */
  ca?: string;
  caFile?: string;
  cert?: string;
  certFile?: string;
  key?: string;
  keyFile?: string;
  /** TLS before the NATS INFO (a server with `handshake_first`). Default false. */
  handshakeFirst?: boolean;
}

export interface NatsSinkOptions {
  /**
   * `nats://host:port` or `tls://host:port` (several: a cluster). Credentials in a URL (`user:pass@`, or a
   * token as `token@`) are taken out of it and used like the options below; logs show host and port only.
   */
  servers: string | string[];
  /**
   * The subject each message is published to, a template: `{domain}` is the first recipient's domain,
   * lower-cased, or `_` when it cannot be subject tokens (none, as `<postmaster>`, or holding `*`, `>`,
   * white space or an empty label). Default "mail.{domain}".
   */
  subject?: string;
  /** The Object Store bucket of claim-checked messages; null: none (larger messages get 552). */
  bucket?: string | null;
  /** Quick start: create the stream (and the bucket) on start when they do not exist. */
  declare?: NatsDeclareOptions;
  /** Milliseconds a delivery waits for a window slot, and again for each PubAck. Default 10,000. */
  publishTimeout?: number;
  /** Deliveries in flight at most (reading, publishing, awaiting the PubAck). Default 256. */
  window?: number;
  /** Largest message in bytes (claim-checked when it does not fit one NATS message). Default 128 MiB. */
  maxMessageSize?: number;
  /** Milliseconds to open the first connection. Default 5,000. */
  connectTimeout?: number;
  /** Reconnect delay in milliseconds: the first, doubled each attempt up to max, jittered. */
  reconnectDelay?: { min: number; max: number };
  /** Milliseconds between client PINGs; two unanswered ones mark the connection stale. Default 10,000. */
  pingInterval?: number;
  /** Milliseconds close() waits for deliveries in flight. Default: publishTimeout. */
  closeTimeout?: number;
  /** Authentication (at most one kind): a token, a user and password, or a creds file (JWT + NKey seed). */
  token?: string;
  user?: string;
  pass?: string;
  credsFile?: string;
  tls?: NatsTlsOptions;
  /** The connection's name on the server (`nats server report connections`). Default "mailgate". */
  name?: string;
  /** Where connection events go (never a credential). Default: the server's default logger. */
  logger?: Logger;
}

/** The largest message by default, as the AMQP sink's (RabbitMQ's default limit). */
const DEFAULT_MAX_MESSAGE_SIZE = 128 * 1024 * 1024;
const DEFAULT_BUCKET = "mailgate-messages";
/** Stream and bucket names: what nats-server accepts in both. */
const NAME = /^[A-Za-z0-9_-]{1,255}$/;

/** Credentials of one kind at most (see NatsSinkOptions). */
export interface NatsAuth {
  token?: string;
  user?: string;
  pass?: string;
  credsFile?: string;
}

/** NatsSinkOptions checked, with every default filled in. */
export interface NatsSettings {
  subject: string;
  subjectFor: (envelope: StoreEnvelope) => string;
  bucket: string | null;
  declare: Required<NatsDeclareOptions> | undefined;
  publishTimeout: number;
  window: number;
  maxMessageSize: number;
  connectTimeout: number;
  reconnectDelay: { min: number; max: number };
  pingInterval: number;
  closeTimeout: number;
  /** host:port of each server, without credentials. */
  servers: string[];
  redactedServers: string;
  auth: NatsAuth;
  tls: NatsTlsOptions | undefined;
  name: string;
  logger: Logger;
}

/** Checks `options` (a TypeError naming the option on a bad one) and fills in the defaults. */
export function natsSettings(options: NatsSinkOptions): NatsSettings {
  const subject = options.subject ?? "mail.{domain}";
  const subjectFor = domainTemplate("subject", subject, subjectTokens);
  if (!isPublishSubject(subjectFor({ from: "", to: ["a@example.com"] }))) {
    throw new TypeError(
      `Invalid option subject: "${subject}" is not a NATS subject (dot-separated tokens, no wildcards or white space).`,
    );
  }
  const bucket = options.bucket === undefined ? DEFAULT_BUCKET : options.bucket;
  if (bucket !== null && !NAME.test(bucket)) {
    throw new TypeError("Invalid option bucket: use letters, digits, - and _ (or null for no claim check).");
  }
  const publishTimeout = positiveInteger("publishTimeout", options.publishTimeout, 10_000);
  const servers = parseServers(options.servers);
  return {
    subject,
    subjectFor,
    bucket,
    declare: options.declare ? declaration(options.declare, subject) : undefined,
    publishTimeout,
    window: positiveInteger("window", options.window, 256),
    maxMessageSize: positiveInteger("maxMessageSize", options.maxMessageSize, DEFAULT_MAX_MESSAGE_SIZE),
    connectTimeout: positiveInteger("connectTimeout", options.connectTimeout, 5_000),
    reconnectDelay: reconnectDelay(options.reconnectDelay),
    pingInterval: positiveInteger("pingInterval", options.pingInterval, 10_000),
    closeTimeout: positiveInteger("closeTimeout", options.closeTimeout, publishTimeout),
    servers: servers.hostPorts,
    redactedServers: servers.redacted,
    auth: authentication(options, servers.credentials),
    tls: options.tls ?? (servers.tls ? {} : undefined),
    name: options.name ?? "mailgate",
    logger: options.logger ?? defaultLogger,
  };
}

/** A domain as subject tokens, or "_" when it cannot be (see the subject option). */
function subjectTokens(domain: string): string {
  return /^[^\s*>.]+(\.[^\s*>.]+)*$/u.test(domain) ? domain : "_";
}

/** A subject one can publish to: dot-separated non-empty tokens, no wildcard, no white space. */
function isPublishSubject(subject: string): boolean {
  return subject
    .split(".")
    .every((token) => token !== "" && token !== "*" && token !== ">" && !/\s/u.test(token));
}

function declaration(declare: NatsDeclareOptions, subject: string): Required<NatsDeclareOptions> {
  if (typeof declare.stream !== "string" || !NAME.test(declare.stream)) {
    throw new TypeError("Invalid option declare.stream: give a stream name of letters, digits, - and _.");
  }
  let subjects = declare.subjects;
  if (subjects === undefined) {
    const at = subject.indexOf(DOMAIN_PLACEHOLDER);
    if (at < 0) subjects = [subject];
    else if (at > 0 && subject[at - 1] === ".") subjects = [`${subject.slice(0, at)}>`];
    else {
      throw new TypeError(
        `Invalid option declare.subjects: give the stream's subjects (none can be made from subject "${subject}").`,
      );
    }
  }
  const limit = (name: string, value: number | undefined, fallback: number): number => {
    const chosen = value ?? fallback;
    if (!Number.isSafeInteger(chosen) || chosen < -1 || chosen === 0) {
      throw new TypeError(`Invalid option declare.${name}: ${value} is neither a positive integer nor -1.`);
    }
    return chosen;
  };
  const duration = (name: string, value: number | undefined, fallback: number): number => {
    const chosen = value ?? fallback;
    if (!Number.isSafeInteger(chosen) || chosen < 0) {
      throw new TypeError(`Invalid option declare.${name}: ${value} is not a number of milliseconds.`);
    }
    return chosen;
  };
  return {
    stream: declare.stream,
    subjects,
    duplicateWindow: duration("duplicateWindow", declare.duplicateWindow, 600_000),
    maxAge: duration("maxAge", declare.maxAge, 0),
    maxBytes: limit("maxBytes", declare.maxBytes, -1),
    maxMsgs: limit("maxMsgs", declare.maxMsgs, -1),
    replicas: positiveInteger("declare.replicas", declare.replicas, 1),
    bucketTtl: duration("bucketTtl", declare.bucketTtl, 0),
    bucketMaxBytes: limit("bucketMaxBytes", declare.bucketMaxBytes, -1),
  };
}

/** Server URLs as host:port for nats.js, with the credentials a URL held taken out. */
function parseServers(servers: string | string[]): {
  hostPorts: string[];
  redacted: string;
  tls: boolean;
  credentials: { token?: string; user?: string; pass?: string };
} {
  const list = Array.isArray(servers) ? servers : [servers];
  if (list.length === 0) throw new TypeError("Invalid option servers: give at least one nats:// URL.");
  const hostPorts: string[] = [];
  let tls = false;
  const credentials: { token?: string; user?: string; pass?: string } = {};
  for (const text of list) {
    let url: URL;
    try {
      url = new URL(text.includes("://") ? text : `nats://${text}`);
    } catch {
      // The text may hold a password: never repeat it.
      throw new TypeError("Invalid option servers: not a URL; use nats://host:port or tls://host:port.");
    }
    if (url.protocol !== "nats:" && url.protocol !== "tls:") {
      throw new TypeError(`Invalid option servers: the scheme is ${url.protocol}; use nats:// or tls://.`);
    }
    if (url.protocol === "tls:") tls = true;
    if (url.username && url.password) {
      credentials.user = decodeURIComponent(url.username);
      credentials.pass = decodeURIComponent(url.password);
    } else if (url.username) credentials.token = decodeURIComponent(url.username);
    hostPorts.push(`${url.hostname}:${url.port || "4222"}`);
  }
  return { hostPorts, redacted: hostPorts.join(","), tls, credentials };
}

function authentication(
  options: NatsSinkOptions,
  fromUrl: { token?: string; user?: string; pass?: string },
): NatsAuth {
  const auth = {
    token: options.token ?? fromUrl.token,
    user: options.user ?? fromUrl.user,
    pass: options.pass ?? fromUrl.pass,
    credsFile: options.credsFile,
  };
  const kinds = [auth.token, auth.user, auth.credsFile].filter((value) => value !== undefined).length;
  if (kinds > 1) {
    throw new TypeError("Invalid NATS sink options: give one of token, user and pass, or credsFile.");
  }
  if (auth.user !== undefined && auth.pass === undefined) {
    throw new TypeError("Invalid NATS sink options: user needs pass.");
  }
  return auth;
}
