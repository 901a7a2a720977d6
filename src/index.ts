/** mailgate's public face: the server, its error value, the types hooks see, and the stores. */
export type { EsmtpParams } from "./protocol/commands.js";
export type { Envelope, MessageInfo, ServerInfo, SessionContext } from "./protocol/context.js";
export type { CrlfMode } from "./protocol/data.js";
export { SmtpError } from "./protocol/errors.js";
export type {
  MessageOutcome,
  RecipientOutcome,
  Severity,
  SmtpServerHooks,
} from "./protocol/hooks.js";
/**
 * `receivedHeader(ctx, { hostname, id?, date? })`: the RFC 5321 4.4 Received header for the message of
 * `ctx`, as `mailgate serve` writes it, for an onMessageDataStart hook to ctx.message.write(). The client's
 * HELO and recipient and the reverse DNS name are written so that they cannot imitate the header's
 * structure or carry control characters (see src/protocol/received.ts).
 */
/** The `observer` option: what the server reports for metrics (see the README, "Operations"). */
export type { RefusalReason, ServerObserver } from "./protocol/observer.js";
export { type ReceivedOptions, receivedHeader } from "./protocol/received.js";
export { STANDARD_REPLIES } from "./protocol/replies.js";
export type { Logger, ServerSettings } from "./server/options.js";
export {
  SmtpServer,
  type SmtpServerOptions,
  type StopOptions,
} from "./server/server.js";
/** RabbitMQ: publishes each message with confirms; see the README, "Sinks: RabbitMQ". */
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
 * The HTTP webhook sink (README, "Sinks: HTTP webhook"), and what a receiver written in Node needs to
 * check its requests: the signature and the envelope header.
 */
export { HttpSink, type HttpSinkOptions, refusalFrom } from "./sinks/http.js";
export {
  decodeHttpSinkEnvelope,
  httpSinkSignature,
  type SignedParts,
  verifyHttpSinkSignature,
  type WireEnvelope,
} from "./sinks/http-signature.js";
/** A sink's failure that a spool may take over (the broker said nothing about the message). */
export { SINK_TEMPORARY_TEXT, SinkUnavailable } from "./sinks/sink-error.js";
export {
  type MaildirFlush,
  MaildirStore,
  type MaildirStoreOptions,
  parseEnvelopeHeaders,
} from "./store/maildir.js";
/**
 * `sessionFacts(ctx)`: what the session knew of the client (address, name, HELO, TLS, AUTH, SMTPUTF8,
 * BODY), for StoreEnvelope.session: `store.deliver({ from, to, id, session: sessionFacts(ctx) }, stream)`.
 */
export { sessionFacts } from "./store/session-facts.js";
export type {
  DeliveryReceipt,
  MessageStore,
  SessionFacts,
  StoreEnvelope,
  StoreStatus,
} from "./store/store.js";
