/** mailgate's public face: the server, its error value, the types hooks see, and the stores. */
/**
 * `runWorkers({ workers, options, create })`: your SmtpServer on every core, behind a primary that listens,
 * keeps the limits over all workers and restarts them one by one without refusing anyone (docs/workers.md).
 */
export {
  type PrimaryHandle,
  type PrimaryServices,
  type ReportContent,
  type ReportKind,
  type RunWorkersOptions,
  runWorkers,
  type WorkerHandle,
  type WorkerReport,
  type WorkerReporter,
} from "./cluster/run-workers.js";
export type { EsmtpParams } from "./protocol/commands.js";
export type {
  Envelope,
  MessageInfo,
  RecipientDsn,
  ServerInfo,
  SessionContext,
} from "./protocol/context.js";
export type { CrlfMode } from "./protocol/data.js";
export { SmtpError } from "./protocol/errors.js";
export type {
  MessageOutcome,
  RecipientOutcome,
  Severity,
  SmtpServerHooks,
} from "./protocol/hooks.js";
export type { Awaitable } from "./protocol/maybe-async.js";
/**
 * `receivedHeader(ctx, { hostname, id?, date? })`: the RFC 5321 4.4 Received header for the message of
 * `ctx`, as `mailgate serve` writes it, for an onMessageDataStart hook to ctx.message.write(). The client's
 * HELO and recipient and the reverse DNS name are written so that they cannot imitate the header's
 * structure or carry control characters (see src/protocol/received.ts).
 */
/** The `observer` option: what the server reports for metrics (see docs/operations.md). */
export type { RefusalReason, ServerObserver } from "./protocol/observer.js";
export type { ProxyAddress, ProxyInfo, ProxySslInfo, ProxyTlvs } from "./protocol/proxy.js";
export { type ReceivedOptions, receivedHeader } from "./protocol/received.js";
export { STANDARD_REPLIES } from "./protocol/replies.js";
export type { Forwarded } from "./protocol/xclient.js";
/** What onAuth receives: the mechanism's name and the client's credentials. */
export type { SaslCredentials, SaslMechanismName } from "./sasl/mechanism.js";
/** Limits per client address: the AUTH failure limit's store, and rate limits as hooks (docs/security.md, "Rate limits"). */
export {
  type AddressLimiter,
  MemoryAddressLimiter,
  type MemoryAddressLimiterOptions,
} from "./server/address-limiter.js";
export type { CountedElsewhere } from "./server/admission.js";
export type { ListenerRole } from "./server/listeners.js";
/** The TLS material only the library takes (tlsCert, tlsKey, tlsCa, tlsSecureContext, tlsSniCallback). */
export type { TlsMaterialSettings } from "./server/option-table.js";
export type { Logger, ServerSettings } from "./server/options.js";
export { type ClientRateLimitOptions, clientRateLimits, type RateLimitName } from "./server/rate-limits.js";
export {
  connectRedis,
  RedisAddressLimiter,
  type RedisAddressLimiterOptions,
} from "./server/redis-address-limiter.js";
export {
  SmtpServer,
  type SmtpServerOptions,
  type StartOptions,
  type StopOptions,
} from "./server/server.js";
/** RabbitMQ: publishes each message with confirms; see docs/sinks-rabbitmq.md. */
export {
  AMQP_HEADERS,
  type AmqpDeclareOptions,
  AmqpSink,
  type AmqpSinkOptions,
  type AmqpSinkState,
  envelopeFromAmqpHeaders,
  RABBITMQ_MAX_MESSAGE_SIZE,
} from "./sinks/amqp.js";
/**
 * The HTTP webhook sink (docs/sinks-http.md), and what a receiver written in Node needs to
 * check its requests: the signature and the envelope header.
 */
export { HttpSink, type HttpSinkOptions, refusalFrom } from "./sinks/http.js";
export {
  httpSinkSignature,
  type SignedParts,
  verifyHttpSinkSignature,
} from "./sinks/http-signature.js";
/** The Mailgate-Envelope header of the HTTP and NATS sinks: the envelope and session facts, SMTPUTF8-safe. */
export {
  decodeMailgateEnvelope,
  encodeMailgateEnvelope,
  type WireEnvelope,
} from "./sinks/mailgate-envelope.js";
/** NATS JetStream: publishes each message and awaits its PubAck; see docs/sinks-nats.md. */
export {
  type NatsDeclareOptions,
  NatsSink,
  type NatsSinkOptions,
  type NatsSinkState,
  type NatsTlsOptions,
} from "./sinks/nats.js";
export {
  type ClaimCheck,
  NATS_HEADERS,
  type NatsMailHeaders,
  readNatsMailHeaders,
} from "./sinks/nats-headers.js";
export { natsSinkOptionsFromUrl } from "./sinks/nats-url.js";
/** A sink's failure that a spool may take over (the broker said nothing about the message). */
export { SINK_TEMPORARY_TEXT, SinkUnavailable } from "./sinks/sink-error.js";
export type { SinkStartOptions } from "./sinks/sink-options.js";
/** The spool for outages: wraps a sink, spools what it cannot take now; see docs/sinks-spool.md. */
export { SinkSpool, type SinkSpoolOptions, type SpoolStats } from "./sinks/spool.js";
export type { SinkState } from "./sinks/spool-health.js";
/**
 * `await stagingStore(sink, directory)`: the sink gets a streamed message only once it was received whole
 * into a file under `directory` (a slow client then holds disk space, not the sink's window or memory).
 */
export { type StagingOptions, stagingStore } from "./sinks/staging.js";
export { MaildirStore, type MaildirStoreOptions, parseEnvelopeHeaders } from "./store/maildir.js";
/**
 * `sessionFacts(ctx)`: what the session knew of the client (address, name, HELO, TLS, AUTH, SMTPUTF8,
 * BODY), for StoreEnvelope.session: `store.deliver({ from, to, id, session: sessionFacts(ctx) }, stream)`.
 */
export { sessionFacts } from "./store/session-facts.js";
/** A message received whole into a file (what stagingStore hands its sink): re-readable, its size known. */
export { StagedMessage } from "./store/staged-message.js";
export type {
  DeliveryReceipt,
  MessageStore,
  SessionFacts,
  StoreEnvelope,
  StoreStatus,
} from "./store/store.js";
/**
 * A message already in memory, for MessageStore.deliver: `store.deliver(envelope, new
 * WholeMessage(ctx.message.data))` from onMessageData; the sinks take its bytes without iterating.
 */
export { WholeMessage } from "./store/whole-message.js";
/**
 * `server.tls` (null without TLS) is a TlsContextProvider: `certificate` (X509Certificate),
 * `certificatePem`, `generated`, `reload()`, SNI certificates; `ctx.server.tls` is a TlsSessionInfo.
 */
export type { TlsContextProvider, TlsSessionInfo } from "./tls/context.js";
/** In-memory PEM (a string or a Buffer) and the SNI chooser, as the TLS material options take them. */
export type { PemInput, SniCallback } from "./tls/material.js";
export type { TlsPreset, TlsPresetName } from "./tls/presets.js";
export type { TicketKeySource } from "./tls/ticket-keys.js";
