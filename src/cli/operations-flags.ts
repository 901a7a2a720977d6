/**
 * The operations flags of `mailgate serve`: --metrics-listen HOST:PORT (the /metrics, /healthz and /readyz
 * endpoint, off by default) and --log-format text|json.
 */
import type { ParseArgsConfig } from "node:util";
import { UsageError } from "./flag-values.js";

export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface OperationsFlags {
  /** Where the operations endpoint listens; undefined: it is off. */
  metricsListen: { host: string; port: number } | undefined;
  logFormat: LogFormat;
}

export const OPERATIONS_OPTIONS: NonNullable<ParseArgsConfig["options"]> = {
  "metrics-listen": { type: "string" },
  "log-format": { type: "string" },
};

export function parseOperationsFlags(values: Record<string, string | boolean | undefined>): OperationsFlags {
  const listen = values["metrics-listen"];
  const format = values["log-format"] ?? "text";
  if (!LOG_FORMATS.includes(format as LogFormat)) {
    throw new UsageError(
      `Invalid value for --log-format: "${format}"; it accepts one of ${LOG_FORMATS.join(", ")}.`,
    );
  }
  return {
    metricsListen: typeof listen === "string" ? parseListenAddress(listen) : undefined,
    logFormat: format as LogFormat,
  };
}

/** "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464", "localhost:0". */
function parseListenAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port > 65535) {
    throw new UsageError(
      `Invalid value for --metrics-listen: "${text}"; it accepts HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464.`,
    );
  }
  return { host: (match[1] ?? match[2]) as string, port };
}

export const OPERATIONS_HELP = [
  "  --metrics-listen HOST:PORT",
  "      Serve GET /metrics (Prometheus text), /healthz (200 while running) and /readyz (200 when listening and the store can take mail, else 503 and why) over plain HTTP on HOST:PORT, e.g. 127.0.0.1:9464 (default: off).",
  "  --log-format FORMAT",
  "      text (one line per event) or json (one JSON object per line: time, level, session id and client address on a session's lines, msg) (default: text).",
];
