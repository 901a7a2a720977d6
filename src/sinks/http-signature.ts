/**
 * The HTTP sink's wire format, shared by the sink and by receivers written in Node: the envelope header
 * and the request signature (both described in the README, "Sinks: HTTP webhook").
 *
 * The envelope travels as one header, `Mailgate-Envelope`, holding base64url (RFC 4648 5, no padding) of
 * a UTF-8 JSON object `{"from", "to", "session"}`: header values are Latin-1 at best, and SMTPUTF8
 * addresses are UTF-8, so the JSON is never put into a header as it is.
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
import type { SessionFacts, StoreEnvelope } from "../store/store.js";

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

/** The envelope as it travels in Mailgate-Envelope (the id has its own header). */
export interface WireEnvelope {
  from: string;
  to: string[];
  session: SessionFacts | null;
}

/** The Mailgate-Envelope value: base64url of the UTF-8 JSON of {from, to, session}. */
export function encodeHttpSinkEnvelope(envelope: StoreEnvelope): string {
  const wire: WireEnvelope = { from: envelope.from, to: envelope.to, session: envelope.session ?? null };
  return Buffer.from(JSON.stringify(wire), "utf8").toString("base64url");
}

/** Reads a Mailgate-Envelope value back; throws a TypeError when it is not one. */
export function decodeHttpSinkEnvelope(value: string | undefined): WireEnvelope {
  if (typeof value !== "string" || !/^[A-Za-z0-9_-]+$/.test(value)) {
    throw new TypeError("Mailgate-Envelope is missing or not base64url.");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(value, "base64url").toString("utf8"));
  } catch {
    throw new TypeError("Mailgate-Envelope is not base64url of a JSON object.");
  }
  const wire = parsed as Partial<WireEnvelope> | null;
  const isString = (item: unknown): item is string => typeof item === "string";
  if (
    typeof wire !== "object" ||
    wire === null ||
    !isString(wire.from) ||
    !Array.isArray(wire.to) ||
    wire.to.length === 0 ||
    !wire.to.every(isString) ||
    (wire.session !== null && typeof wire.session !== "object")
  ) {
    throw new TypeError("Mailgate-Envelope lacks from, to or session.");
  }
  return { from: wire.from, to: wire.to, session: wire.session ?? null };
}
