/** The SMTP envelope of one message, and what a store may record about where it came from. */
export interface StoreEnvelope {
  /** The reverse-path without angle brackets; "" for the null sender <>. */
  from: string;
  /** The accepted recipients, in RCPT order, without angle brackets. */
  to: string[];
  /**
   * The message's id, chosen by the caller and kept by every retry of the same message (`mailgate serve`:
   * the id of its Received header). Broker sinks carry it as the message id (AMQP message-id, JetStream's
   * Nats-Msg-Id, an HTTP header), so that a consumer can recognise a message delivered twice. A store
   * given none makes its own.
   */
  id?: string;
  /** What the session knew of the client, for stores that carry it beside the message. */
  session?: SessionFacts;
}

/** What the session knew of the client that sent a message (see sessionFacts()). */
export interface SessionFacts {
  /** The client's IP address ("" for a UNIX socket peer); behind a PROXY header, the one it names. */
  clientAddress: string;
  clientPort: number;
  /** The client's host name by reverse DNS, or its address when there is none (or no lookup was made). */
  clientName: string;
  /** The HELO/EHLO/LHLO argument. */
  helo: string;
  /** The TLS protocol and cipher, or null without TLS. */
  tls: { protocol: string; cipher: string } | null;
  /** The authenticated user (the authorization identity), or null without AUTH. */
  authenticatedAs: string | null;
  /** The transaction used SMTPUTF8 (RFC 6531): addresses may be UTF-8. */
  smtputf8: boolean;
  /** BODY= of MAIL FROM: "" when not given, "7bit", "8bitmime" or "binarymime". */
  body: "" | "7bit" | "8bitmime" | "binarymime";
}

/** Where a stored message ended up. */
export interface DeliveryReceipt {
  /** The store's unique name for the message. */
  id: string;
  /** Where the message is, e.g. a file path. */
  location: string;
  /** Bytes written, including any trace headers the store added. */
  size: number;
}

/**
 * What a store or sink may tell its operators; `mailgate serve` reads it for /metrics and /readyz. Every
 * member is optional: a store without them is taken as always ready.
 */
export interface StoreStatus {
  /**
   * A sink's connection state ("connected", "connecting", "disconnected", "closed", ...): the store is
   * ready only while it is "connected" (unless checkReady says otherwise).
   */
  readonly state?: string;
  /** Messages held for later delivery (a spool's depth). */
  readonly depth?: number;
  /**
   * Resolves when the store can take a message now, rejects with the reason otherwise (the Maildir creates
   * a file in tmp/). When present, it alone decides readiness.
   */
  checkReady?(): Promise<void>;
}

/** Where the server puts the messages it accepts. */
export interface MessageStore extends StoreStatus {
  /** Stores one message. `message` yields the message bytes as received (Buffers). Resolves only when the
   *  message is durable. If `message` errors (the SMTP session aborted the message: too big, client gone,
   *  bare LF in strict mode...) or anything fails, nothing is left behind and the promise rejects. */
  deliver(envelope: StoreEnvelope, message: AsyncIterable<Buffer>): Promise<DeliveryReceipt>;
  /**
   * The largest message the store can take in bytes, if it has a limit (a broker's maximum message size):
   * `mailgate serve` advertises the smaller of this and maxMessageSize in SIZE.
   */
  readonly maxMessageSize?: number;
  close?(): Promise<void>;
}
