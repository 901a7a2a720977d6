/**
 * The `Mailgate-Envelope` header, one format for every sink whose transport has ASCII headers (the HTTP
 * sink's request header, the NATS sink's message header): base64url (RFC 4648 5, no padding) of a UTF-8
 * JSON object `{"from", "to", "session"}`. Header values are Latin-1 at best, and SMTPUTF8 addresses are
 * UTF-8, so the JSON is never put into a header as it is.
 */
import { sessionFactsFrom } from "../store/session-facts.js";
import type { SessionFacts, StoreEnvelope } from "../store/store.js";

/** The envelope as it travels in Mailgate-Envelope (the id has its own header). */
export interface WireEnvelope {
  from: string;
  to: string[];
  session: SessionFacts | null;
}

/** The Mailgate-Envelope value: base64url of the UTF-8 JSON of {from, to, session}. */
export function encodeMailgateEnvelope(envelope: StoreEnvelope): string {
  const wire: WireEnvelope = { from: envelope.from, to: envelope.to, session: envelope.session ?? null };
  return Buffer.from(JSON.stringify(wire), "utf8").toString("base64url");
}

/** Reads a Mailgate-Envelope value back; throws a TypeError when it is not one. */
export function decodeMailgateEnvelope(value: string | undefined): WireEnvelope {
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
    !wire.to.every(isString)
  ) {
    throw new TypeError("Mailgate-Envelope lacks from, to or session.");
  }
  let session: SessionFacts | null;
  try {
    session = sessionFactsFrom(wire.session);
  } catch (error) {
    throw new TypeError(`Mailgate-Envelope is wrong: ${(error as Error).message}.`);
  }
  return { from: wire.from, to: wire.to, session };
}
