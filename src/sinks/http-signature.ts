/**
 * The HTTP sink's wire format, shared by the sink and by receivers written in Node: the envelope header
 * and the request signature (described in docs/sinks-http.md).
 *
 * The envelope travels as one header, `Mailgate-Envelope` (see mailgate-envelope.ts).
 *
 * The signature is `Mailgate-Signature: v1=<hex HMAC-SHA256>` over these lines, joined by "\n":
 *
 *     mailgate-v1
 *     <Mailgate-Timestamp: Unix seconds>
 *     <Mailgate-Message-Id>
 *     <Mailgate-Envelope, as sent>
 *     <hex SHA-256 of the request body>
 *
 * No field can hold a "\n" (the id is visible ASCII, the others base64url or digits), so the lines cannot
 * be shifted from one field to another. The body digest is only known once the body is sent: a streamed
 * request carries the signature in an HTTP trailer; a message small enough to be buffered carries it as a
 * header. A receiver hashes the body as it reads it and checks the signature at its end, wherever it was.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const SIGNATURE_VERSION = "v1";

/** What the signature covers, besides the secret. */
export interface SignedParts {
  /** Mailgate-Timestamp: Unix time in seconds, as sent (a decimal string). */
  timestamp: string;
  /** Mailgate-Message-Id. */
  id: string;
  /** Mailgate-Envelope, as sent. */
  envelope: string;
  /** The SHA-256 of the request body, in lower-case hex. */
  bodySha256: string;
}

/** The string that is signed (see the top of this file). */
export function signatureBase(parts: SignedParts): string {
  return ["mailgate-v1", parts.timestamp, parts.id, parts.envelope, parts.bodySha256].join("\n");
}

/** The Mailgate-Signature value for `parts`: "v1=" and the hex HMAC-SHA256 keyed with `secret`. */
export function httpSinkSignature(secret: string | Buffer, parts: SignedParts): string {
  const mac = createHmac("sha256", secret).update(signatureBase(parts), "utf8").digest("hex");
  return `${SIGNATURE_VERSION}=${mac}`;
}

/**
 * Checks a Mailgate-Signature value (header or trailer) in constant time. `secrets` may hold several
 * (the new and the old one while a secret is rotated). `maxSkewSeconds` bounds how far the timestamp may
 * be from `now`: a captured request can be replayed only within that window (receivers should also
 * recognise a message id they already stored).
 */
export function verifyHttpSinkSignature(
  secrets: string | Buffer | readonly (string | Buffer)[],
  parts: SignedParts,
  signature: string | undefined,
  { maxSkewSeconds = 300, now = Date.now() }: { maxSkewSeconds?: number; now?: number } = {},
): boolean {
  if (typeof signature !== "string" || !/^\d{1,12}$/.test(parts.timestamp)) return false;
  if (Math.abs(now / 1000 - Number(parts.timestamp)) > maxSkewSeconds) return false;
  const given = Buffer.from(signature, "latin1");
  let valid = false;
  for (const secret of Array.isArray(secrets) ? secrets : [secrets]) {
    const expected = Buffer.from(httpSinkSignature(secret, parts), "latin1");
    // No early exit: every secret is tried, so the time taken does not tell which one matched.
    if (expected.length === given.length && timingSafeEqual(expected, given)) valid = true;
  }
  return valid;
}
