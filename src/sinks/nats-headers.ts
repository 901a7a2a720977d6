/**
 * The NATS sink's message headers, shared by the sink and by consumers written in Node (see
 * docs/sinks-nats.md). NATS headers are ASCII, like HTTP's: the envelope travels in the one
 * `Mailgate-Envelope` format of every sink (base64url of UTF-8 JSON), the id as JetStream's `Nats-Msg-Id`,
 * and a message too large for one NATS message as a claim check: the Object Store bucket and object name
 * that hold its bytes, with an empty body.
 */
import type { StoreEnvelope } from "../store/store.js";
import { decodeMailgateEnvelope, encodeMailgateEnvelope, type WireEnvelope } from "./mailgate-envelope.js";

export const NATS_HEADERS = {
  /** JetStream's own: the duplicate window drops a second publish with the same id. */
  id: "Nats-Msg-Id",
  envelope: "Mailgate-Envelope",
  /** Claim check: the body is in this Object Store bucket... */
  objectBucket: "Mailgate-Object-Bucket",
  /** ...under this object name (the message id)... */
  objectName: "Mailgate-Object-Name",
  /** ...and is this many bytes long. */
  objectSize: "Mailgate-Object-Size",
} as const;

/** Where a claim-checked message's bytes are. */
export interface ClaimCheck {
  bucket: string;
  name: string;
  size: number;
}

/** What a consumer reads from a stream message's headers. */
export interface NatsMailHeaders {
  id: string;
  envelope: WireEnvelope;
  /** Null when the body is the message itself. */
  claimCheck: ClaimCheck | null;
}

/** The headers of one message as name/value pairs, in the order the sink sets them. */
export function natsMailHeaders(
  id: string,
  envelope: StoreEnvelope,
  claimCheck: ClaimCheck | null = null,
): [string, string][] {
  const headers: [string, string][] = [
    [NATS_HEADERS.id, id],
    [NATS_HEADERS.envelope, encodeMailgateEnvelope(envelope)],
  ];
  if (claimCheck) {
    headers.push(
      [NATS_HEADERS.objectBucket, claimCheck.bucket],
      [NATS_HEADERS.objectName, claimCheck.name],
      [NATS_HEADERS.objectSize, String(claimCheck.size)],
    );
  }
  return headers;
}

/**
 * Reads a stream message's headers back (`get` is a header lookup, e.g. `(name) => msg.headers?.get(name)`);
 * throws a TypeError when they are not a mailgate message's.
 */
export function readNatsMailHeaders(get: (name: string) => string | undefined): NatsMailHeaders {
  const id = get(NATS_HEADERS.id);
  if (!id) throw new TypeError(`Not a mailgate message: ${NATS_HEADERS.id} is missing.`);
  const envelope = decodeMailgateEnvelope(get(NATS_HEADERS.envelope));
  const bucket = get(NATS_HEADERS.objectBucket);
  if (!bucket) return { id, envelope, claimCheck: null };
  const name = get(NATS_HEADERS.objectName);
  const size = Number(get(NATS_HEADERS.objectSize));
  if (!name || !Number.isSafeInteger(size) || size < 0) {
    throw new TypeError(`A claim check without ${NATS_HEADERS.objectName} or ${NATS_HEADERS.objectSize}.`);
  }
  return { id, envelope, claimCheck: { bucket, name, size } };
}
