/** The SMTP envelope of one message, as the store records it. */
export interface StoreEnvelope {
  /** The reverse-path without angle brackets; "" for the null sender <>. */
  from: string;
  /** The accepted recipients, in RCPT order, without angle brackets. */
  to: string[];
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

/** Where the server puts the messages it accepts. */
export interface MessageStore {
  /** Stores one message. `message` yields the message bytes as received (Buffers). Resolves only when the
   *  message is durable. If `message` errors (the SMTP session aborted the message: too big, client gone,
   *  bare LF in strict mode...) or anything fails, nothing is left behind and the promise rejects. */
  deliver(envelope: StoreEnvelope, message: AsyncIterable<Buffer>): Promise<DeliveryReceipt>;
  close?(): Promise<void>;
}
