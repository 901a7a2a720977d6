/**
 * The RabbitMQ sink's message headers, shared by the sink and by consumers written in Node (see the
 * docs/sinks-rabbitmq.md): the envelope and the session's facts as AMQP headers (AMQP field tables carry
 * UTF-8, so SMTPUTF8 addresses travel as they are).
 */
import type { StoreEnvelope } from "../store/store.js";

/** Names of the AMQP headers the sink sets; a consumer reads the envelope back from them. */
export const AMQP_HEADERS = {
  from: "x-mailgate-from",
  to: "x-mailgate-to",
  clientAddress: "x-mailgate-client-address",
  clientPort: "x-mailgate-client-port",
  clientName: "x-mailgate-client-name",
  helo: "x-mailgate-helo",
  tlsProtocol: "x-mailgate-tls-protocol",
  tlsCipher: "x-mailgate-tls-cipher",
  authenticatedAs: "x-mailgate-authenticated-as",
  smtputf8: "x-mailgate-smtputf8",
  body: "x-mailgate-body",
} as const;

/**
 * The AMQP headers for `envelope`: the envelope and the session's facts (see docs/sinks-rabbitmq.md). Exported for the
 * benchmark's direct publisher, which sends the same headers; not part of the public API.
 */
export function amqpHeaders(envelope: StoreEnvelope): Record<string, unknown> {
  const headers: Record<string, unknown> = {
    [AMQP_HEADERS.from]: envelope.from,
    [AMQP_HEADERS.to]: [...envelope.to],
  };
  const session = envelope.session;
  if (session) {
    headers[AMQP_HEADERS.clientAddress] = session.clientAddress;
    headers[AMQP_HEADERS.clientPort] = session.clientPort;
    headers[AMQP_HEADERS.clientName] = session.clientName;
    headers[AMQP_HEADERS.helo] = session.helo;
    if (session.tls) {
      headers[AMQP_HEADERS.tlsProtocol] = session.tls.protocol;
      headers[AMQP_HEADERS.tlsCipher] = session.tls.cipher;
    }
    if (session.authenticatedAs !== null) headers[AMQP_HEADERS.authenticatedAs] = session.authenticatedAs;
    headers[AMQP_HEADERS.smtputf8] = session.smtputf8;
    headers[AMQP_HEADERS.body] = session.body;
  }
  return headers;
}

/** Reads back the envelope a consumer receives in a message's headers. */
export function envelopeFromAmqpHeaders(
  headers: Record<string, unknown> | undefined,
  messageId?: string,
): StoreEnvelope {
  const from = headers?.[AMQP_HEADERS.from];
  const to = headers?.[AMQP_HEADERS.to];
  if (typeof from !== "string" || !Array.isArray(to) || !to.every((address) => typeof address === "string")) {
    throw new Error(
      `Not a mailgate message: headers ${AMQP_HEADERS.from} and ${AMQP_HEADERS.to} are missing.`,
    );
  }
  return { from, to: to as string[], ...(messageId ? { id: messageId } : {}) };
}
