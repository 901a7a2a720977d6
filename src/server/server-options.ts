/**
 * What `new SmtpServer(options)`, start() and stop() accept, and the checks the constructor makes on
 * the options as given: no misspelt name, hooks that are functions, a usable logger and AUTH failure
 * limiter, AUTH only where TLS can protect it. The settings' own values are checked by options.ts.
 */
import type { SmtpServerHooks } from "../protocol/hooks.js";
import type { ServerObserver } from "../protocol/observer.js";
import type { TicketKeySource } from "../tls/ticket-keys.js";
import type { AddressLimiter } from "./address-limiter.js";
import { SMTP_SERVER_OPTIONS } from "./foreign-options.js";
import { HOOK_NAMES } from "./hook-binding.js";
import type { ListenPlan } from "./listeners.js";
import { LIBRARY_OPTION_SPECS, OPTION_SPECS, type TlsMaterialSettings } from "./option-table.js";
import type { Logger, ServerSettings } from "./options.js";

export type SmtpServerOptions = Omit<Partial<ServerSettings>, "ports" | "hosts"> &
  Partial<TlsMaterialSettings> &
  SmtpServerHooks & {
    /** "2525", 2525, "2525, 3535:4545" or a list of such items. */
    ports?: string | number | readonly (string | number)[];
    /** "127.0.0.1, ::1", "*" or a list of hosts. */
    hosts?: string | readonly string[];
    logger?: Logger;
    /**
     * Where AUTH failures per client address are counted (maxAuthFailuresPerIp, authFailureWindow): by
     * default in this process's memory; a RedisAddressLimiter shares the counts among instances.
     */
    authFailureLimiter?: AddressLimiter;
    /** Told of connections, commands, replies, messages and failures (metrics); see ServerObserver. */
    observer?: ServerObserver;
  };

export interface StopOptions {
  /** Let running transactions finish (default true); idle sessions get 421 at once either way. */
  gracefully?: boolean;
  /** Milliseconds to wait for them before the rest get 421 (default 10000). */
  timeout?: number;
}

/** How start() serves; the defaults are a server of its own. runWorkers starts its workers' servers so. */
export interface StartOptions {
  /**
   * Bind the listeners of ports, hosts and socketPath (default true). With false nothing is bound: the
   * connections come through serveSocket(), accepted by another process (a primary) or by the caller.
   */
  listen?: boolean;
  /** Where session-ticket keys come from instead of a private rotating key (a primary's, for all workers). */
  ticketKeySource?: TicketKeySource;
  /**
   * Counts AUTH failures per client address (maxAuthFailuresPerIp) instead of this server's memory (a
   * primary's, for all workers); ignored when the options gave an authFailureLimiter (a RedisAddressLimiter
   * spans instances, and so workers too).
   */
  authFailureLimiter?: AddressLimiter;
}

/** Every name an option may have: the table's, the library-only ones, the hooks and the objects. */
const KNOWN_OPTIONS = [
  ...OPTION_SPECS.map((spec) => spec.name as string),
  ...LIBRARY_OPTION_SPECS.map((spec) => spec.name as string),
  ...HOOK_NAMES,
  "logger",
  "authFailureLimiter",
  "observer",
];

/** A misspelt option would otherwise be ignored in silence: name it, and the closest known one. */
export function rejectUnknownOptions(given: Record<string, unknown>): void {
  for (const name of Object.keys(given)) {
    if (KNOWN_OPTIONS.includes(name) || given[name] === undefined) continue;
    const foreign = SMTP_SERVER_OPTIONS[name];
    if (foreign !== undefined) {
      throw new TypeError(`Unknown option ${name} (smtp-server's); mailgate's is ${foreign}.`);
    }
    const close = KNOWN_OPTIONS.find((candidate) =>
      candidate.toLowerCase().startsWith(name.toLowerCase().slice(0, 6)),
    );
    throw new TypeError(`Unknown option ${name}${close ? `; did you mean ${close}?` : "."}`);
  }
}

/** The hook functions among the options, by name; throws for a hook option that is not a function. */
export function hookOptions(given: Record<string, unknown>): Partial<SmtpServerHooks> {
  const hooks: Record<string, unknown> = {};
  for (const name of HOOK_NAMES) {
    const hook = given[name];
    if (hook === undefined) continue;
    if (typeof hook !== "function") throw new TypeError(`Invalid option ${name}: it must be a function.`);
    hooks[name] = hook;
  }
  return hooks as Partial<SmtpServerHooks>;
}

/** Throws for a logger or an AUTH failure limiter that lacks the methods the server calls. */
export function checkServiceOptions(options: SmtpServerOptions): void {
  if (options.logger !== undefined) {
    const logger = options.logger as unknown as Record<string, unknown>;
    for (const method of ["debug", "info", "warn", "error"]) {
      if (typeof logger?.[method] !== "function") {
        throw new TypeError(
          `Invalid option logger: it needs debug, info, warn and error methods (${method} is missing).`,
        );
      }
    }
  }
  if (options.authFailureLimiter !== undefined && typeof options.authFailureLimiter?.record !== "function") {
    throw new TypeError("Invalid option authFailureLimiter: it needs isBlocked and record methods.");
  }
}

/** AUTH offered without any TLS would send passwords in clear: refused unless authOverPlaintext says so. */
export function checkAuthNeedsTls(settings: ServerSettings, plan: ListenPlan): void {
  if (
    settings.authMode !== "forbidden" &&
    settings.tlsMode === "forbidden" &&
    plan.implicitTlsPorts.size === 0 &&
    !settings.authOverPlaintext
  ) {
    throw new TypeError(
      "Invalid option authMode: AUTH needs TLS (tlsMode optional or required, or tlsPorts), or authOverPlaintext enabled to allow it without encryption.",
    );
  }
}
