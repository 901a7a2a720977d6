/** The facts of a session that a store may carry beside a message (StoreEnvelope.session), and reading them back. */
import type { SessionContext } from "../protocol/context.js";
import type { SessionFacts } from "./store.js";

export function sessionFacts(ctx: SessionContext): SessionFacts {
  const { server, envelope } = ctx;
  return {
    clientAddress: server.remoteIp,
    clientPort: server.remotePort,
    clientName: server.remoteHost,
    helo: server.helo,
    tls: server.tls ? { protocol: server.tls.protocol, cipher: server.tls.cipher } : null,
    authenticatedAs: server.authenticated ? server.authorizationId : null,
    smtputf8: envelope.encodingUtf8 === "utf8",
    body: envelope.encodingBody,
  };
}

const BODY_TYPES: ReadonlySet<string> = new Set(["", "7bit", "8bitmime", "binarymime"]);

/**
 * Session facts read back from outside the process (a spooled file, a Mailgate-Envelope header), checked
 * member by member against SessionFacts: null for null or absent facts, a TypeError naming the first
 * member that is missing or of the wrong type. Only the members of SessionFacts are kept.
 */
export function sessionFactsFrom(value: unknown): SessionFacts | null {
  if (value === null || value === undefined) return null;
  if (typeof value !== "object" || Array.isArray(value))
    throw new TypeError("the session facts are not an object");
  const facts = value as Record<string, unknown>;
  const text = (name: string): string => {
    const member = facts[name];
    if (typeof member !== "string") throw wrongType(name, "a string");
    return member;
  };
  const port = facts.clientPort;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw wrongType("clientPort", "a port number");
  }
  const tls = facts.tls;
  if (tls !== null && (typeof tls !== "object" || Array.isArray(tls)))
    throw wrongType("tls", "null or an object");
  const { protocol, cipher } = (tls ?? {}) as Record<string, unknown>;
  if (tls !== null && (typeof protocol !== "string" || typeof cipher !== "string")) {
    throw wrongType("tls", "{ protocol, cipher } strings");
  }
  const authenticatedAs = facts.authenticatedAs;
  if (authenticatedAs !== null && typeof authenticatedAs !== "string") {
    throw wrongType("authenticatedAs", "null or a string");
  }
  if (typeof facts.smtputf8 !== "boolean") throw wrongType("smtputf8", "a boolean");
  const body = facts.body;
  if (typeof body !== "string" || !BODY_TYPES.has(body)) {
    throw wrongType("body", `one of ${[...BODY_TYPES].map((b) => JSON.stringify(b)).join(", ")}`);
  }
  return {
    clientAddress: text("clientAddress"),
    clientPort: port,
    clientName: text("clientName"),
    helo: text("helo"),
    tls: tls === null ? null : { protocol: protocol as string, cipher: cipher as string },
    authenticatedAs,
    smtputf8: facts.smtputf8,
    body: body as SessionFacts["body"],
  };
}

function wrongType(member: string, expected: string): TypeError {
  return new TypeError(`the session facts' ${member} is not ${expected}`);
}
