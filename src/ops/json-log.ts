/**
 * `--log-format json`: one JSON line per event (pino), with the time, the level, and for a session's
 * events its id (the same on every line of the session) and the client's address, then the event's text.
 * The events are the server's own (src/server/logger.ts documents them): never a message body, never a
 * secret (AUTH lines are logged without their credentials).
 */
import { randomBytes } from "node:crypto";
import pino, { type DestinationStream } from "pino";
import type { SessionContext } from "../protocol/context.js";
import type { Severity } from "../protocol/hooks.js";
import { batchedStdout } from "../server/batched-output.js";

export type LogEvent = (
  ctx: SessionContext | null,
  severity: Severity,
  message: string,
  error?: unknown,
) => void;

/** Writes each event as a JSON line to `destination` (stdout by default, written once per turn). */
export function jsonLogEvents(destination: DestinationStream = batchedStdout()): LogEvent {
  const logger = pino(
    {
      level: "debug", // the server filters by loggerSeverity before it calls this
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  const sessionIds = new WeakMap<SessionContext, string>();
  /** Unique within this process; the prefix tells this process's sessions from another instance's. */
  const prefix = randomBytes(3).toString("hex");
  let sessions = 0;
  const sessionId = (ctx: SessionContext) => {
    let id = sessionIds.get(ctx);
    if (id === undefined) {
      sessions++;
      id = `${prefix}-${sessions.toString(36)}`;
      sessionIds.set(ctx, id);
    }
    return id;
  };
  return (ctx, severity, message, error) => {
    const fields: Record<string, unknown> = {};
    if (ctx) {
      fields.session = sessionId(ctx);
      fields.client = ctx.server.remoteIp === "" ? "unix" : `${ctx.server.remoteIp}:${ctx.server.remotePort}`;
    }
    // As the text log: the stack of an internal failure only (fatal), never a hook's error object.
    if (severity === "fatal" && error instanceof Error) fields.err = error;
    logger[severity](fields, message);
  };
}
