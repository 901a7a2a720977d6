/**
 * Logging: the seed's severities, any logger object (console, pino...) and a default that writes one
 * line per event in the seed's format. Messages never contain message bodies or credentials.
 */
import type { SessionContext } from "../protocol/context.js";
import type { SessionHooks, Severity } from "../protocol/hooks.js";
import type { Logger } from "./options.js";

const RANK: Record<Severity, number> = { debug: 0, info: 1, warn: 2, error: 3, fatal: 4 };

export function severityEnabled(severity: Severity, threshold: Severity): boolean {
  return RANK[severity] >= RANK[threshold];
}

/** `logger` without the levels below `threshold` (they do nothing). */
export function loggerAbove(logger: Logger, threshold: Severity): Logger {
  const ignore = () => {};
  return {
    debug: severityEnabled("debug", threshold) ? (message) => logger.debug(message) : ignore,
    info: severityEnabled("info", threshold) ? (message) => logger.info(message) : ignore,
    warn: severityEnabled("warn", threshold) ? (message) => logger.warn(message) : ignore,
    error: severityEnabled("error", threshold) ? (message) => logger.error(message) : ignore,
  };
}

/** Where lines go: a stream (process.stderr), or a BatchedOutput (src/server/batched-output.ts). */
export interface LineSink {
  write(text: string): unknown;
}

/**
 * A logger writing "YYYY-MM-DD HH:MM:SS: [LEVEL] message" lines (the seed's format, UTC) to `sink`.
 */
export function lineLogger(sink: LineSink): Logger {
  let second = -1;
  let stamp = "";
  const writeLine = (level: string, message: string) => {
    const now = Date.now();
    if (Math.floor(now / 1000) !== second) {
      second = Math.floor(now / 1000);
      stamp = new Date(now).toISOString().replace("T", " ").slice(0, 19);
    }
    sink.write(`${stamp}: [${level}] ${message}\n`);
  };
  return {
    debug: (message) => writeLine("DEBUG", message),
    info: (message) => writeLine("INFO", message),
    warn: (message) => writeLine("WARN", message),
    error: (message) => writeLine("ERROR", message),
  };
}

/**
 * The library's default: the seed's lines, on stderr. A library must not write to its program's stdout
 * unasked (the program may use it for its own output); `mailgate serve` logs to stdout itself.
 */
export const defaultLogger: Logger = lineLogger(process.stderr);

/** Sends one event to a logger, prefixed with the client's address when it comes from a session. */
export function writeLog(
  logger: Logger,
  ctx: SessionContext | null,
  severity: Severity,
  message: string,
  error?: unknown,
): void {
  const peer =
    ctx && (ctx.server.remoteIp === "" ? "unix" : `${ctx.server.remoteIp}:${ctx.server.remotePort}`);
  const where = peer ? `[${peer}] ` : "";
  const detail = severity === "fatal" && error instanceof Error && error.stack ? `\n${error.stack}` : "";
  const text = `${where}${message}${detail}`;
  if (severity === "debug") logger.debug(text);
  else if (severity === "info") logger.info(text);
  else if (severity === "warn") logger.warn(text);
  else logger.error(text);
}

/**
 * `onLogging` made safe for the server's own events: its failure (a hook or a logger that throws) must
 * never break a session or crash the process. The first failure becomes a process warning (stderr by
 * default); later ones are dropped, so a broken logger cannot flood the output either.
 */
export function guardedLogging(onLogging: SessionHooks["log"]): SessionHooks["log"] {
  let failed = false;
  return (ctx, severity, message, error) => {
    try {
      onLogging(ctx, severity, message, error);
    } catch (failure) {
      if (failed) return;
      failed = true;
      process.emitWarning(
        `mailgate: onLogging threw (${failure instanceof Error ? failure.message : String(failure)}); events it fails to log are dropped.`,
      );
    }
  };
}
