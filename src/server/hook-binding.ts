/**
 * The event hooks a user overrides (by subclassing, as the seed does, or by passing functions in the
 * options), their one list of names, and the adapter through which sessions call them.
 */
import type { Readable } from "node:stream";
import type { SessionContext } from "../protocol/context.js";
import type { AlwaysPresent, SessionHooks, SmtpServerHooks } from "../protocol/hooks.js";

/** Every hook a server may be given, by name: options, subclasses, docs and tests use this one list. */
export const HOOK_NAMES = [
  "onConnect",
  "onDisconnect",
  "onHelo",
  "onMailFrom",
  "onRcptTo",
  "onVrfy",
  "onExpn",
  "onMessageDataStart",
  "onMessageDataReceiving",
  "onMessageDataHeaders",
  "onMessageStream",
  "onMessageData",
  "onProcessLineUnknown",
  "onAuth",
  "onLogging",
] as const satisfies readonly (keyof SmtpServerHooks)[];

/**
 * The adapter the sessions call: built once per server, and calling the server's hooks at each use, so
 * that hooks added by subclasses (or set later, as class fields) are seen.
 */
export function bindHooks(
  server: HookedServer,
  log: SessionHooks["log"],
  observer: SessionHooks["observer"],
): SessionHooks {
  return {
    onConnect: (ctx) => server.onConnect(ctx),
    onHelo: (ctx, helo) => server.onHelo(ctx, helo),
    onMailFrom: (ctx, address, params) => server.onMailFrom(ctx, address, params),
    onRcptTo: (ctx, address, params) => server.onRcptTo(ctx, address, params),
    // The optional hooks are looked up at each use, so one set later (a class field) is seen too.
    get onVrfy() {
      const hook = server.onVrfy;
      return hook ? (ctx: SessionContext, argument: string) => hook.call(server, ctx, argument) : undefined;
    },
    get onExpn() {
      const hook = server.onExpn;
      return hook ? (ctx: SessionContext, argument: string) => hook.call(server, ctx, argument) : undefined;
    },
    onMessageDataStart: (ctx) => server.onMessageDataStart(ctx),
    onMessageDataReceiving: (ctx) => server.onMessageDataReceiving(ctx),
    onMessageDataHeaders: (ctx) => server.onMessageDataHeaders(ctx),
    get onMessageStream() {
      const hook = server.onMessageStream;
      return hook ? (ctx: SessionContext, stream: Readable) => hook.call(server, ctx, stream) : undefined;
    },
    onMessageData: (ctx) => server.onMessageData(ctx),
    onProcessLineUnknown: (ctx, line) => server.onProcessLineUnknown(ctx, line),
    onAuth: (ctx, authorizationId, authenticationId, secret, mechanism, credentials) =>
      server.onAuth(ctx, authorizationId, authenticationId, secret, mechanism, credentials),
    log,
    observer,
  };
}

/** A server: every hook optional but those the session always calls, which SmtpServer implements. */
type HookedServer = SmtpServerHooks & Required<Pick<SmtpServerHooks, AlwaysPresent>>;
