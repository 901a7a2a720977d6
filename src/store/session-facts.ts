/** The facts of a session that a store may carry beside a message (StoreEnvelope.session). */
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
