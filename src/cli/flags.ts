/**
 * `mailgate serve` flags: one per server option, named after it in kebab-case, taken from the same
 * table that validates the options (src/server/options.ts), so the two cannot drift apart.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { OPTION_SPECS, type OptionSpec, resolveSettings, type ServerSettings } from "../server/options.js";
import {
  ConfigError,
  type FlagTypes,
  type FlagValues,
  inConfigTerms,
  mergeOverConfig,
  readConfigValues,
} from "./config-file.js";
import { kebab, UsageError, wholeNumber } from "./flag-values.js";
import type { LimitFlags } from "./limits.js";
import {
  OPERATIONS_HELP,
  OPERATIONS_OPTIONS,
  type OperationsFlags,
  parseOperationsFlags,
} from "./operations-flags.js";
import { parseAcceptDomains } from "./recipient-policy.js";
import { parseSinkFlags, type SinkFlags, sinkHelpLines, sinkParseArgsOptions } from "./sink-flags.js";
import {
  parseWorkerFlags,
  type WorkerFlags,
  workerHelpLines,
  workerParseArgsOptions,
} from "./worker-flags.js";

/**
 * Where `mailgate serve` departs from the library's defaults (its --help and docs/serve.md say so):
 * messages of up to 64 KB, what a stream would hold before pausing anyway, are handed to the store whole,
 * without the Readable that costs more per message than the message itself.
 */
export const SERVE_DEFAULTS: Readonly<Pick<ServerSettings, "bufferMessagesUpTo">> = {
  bufferMessagesUpTo: 64 * 1024,
};

export interface ServeFlags {
  settings: Partial<ServerSettings>;
  maildir: string;
  /** --auth-users FILE: accounts for AUTH. */
  authUsers: string | undefined;
  /** --accept-domains: domains whose every address is accepted (ASCII form); [] = no such rule. */
  acceptDomains: string[];
  /** --recipients FILE: accepted addresses and @domains, one a line. */
  recipients: string | undefined;
  /** --connections-per-minute, --messages-per-minute, --redis: limits per client address. */
  limits: LimitFlags;
  /** --sink URL and its flags: the broker or endpoint that stores instead of the Maildir. */
  sink: SinkFlags | undefined;
  /** --metrics-listen, --log-format. */
  operations: OperationsFlags;
  /** --workers, --worker-drain-timeout and --worker-hang-timeout: one process, or a primary and its workers. */
  workers: WorkerFlags;
  help: boolean;
}

export const DEFAULT_MAILDIR = "./mail";

/** Shorter spellings users reach for first. */
const ALIASES: Record<string, keyof ServerSettings> = {
  pipelining: "pipeliningExtension",
  internationalization: "internationalizationExtensions",
};

function flagNames(spec: OptionSpec): string[] {
  const aliases = Object.keys(ALIASES).filter((alias) => ALIASES[alias] === spec.name);
  return [kebab(spec.name), ...aliases];
}

/** Every flag of `mailgate serve`, as util.parseArgs takes them (the config file's keys come from here too). */
function serveFlagOptions(): NonNullable<ParseArgsConfig["options"]> {
  const options: NonNullable<ParseArgsConfig["options"]> = {
    config: { type: "string" },
    maildir: { type: "string" },
    "auth-users": { type: "string" },
    "accept-domains": { type: "string" },
    "connections-per-minute": { type: "string" },
    "messages-per-minute": { type: "string" },
    redis: { type: "string" },
    "redis-prefix": { type: "string" },
    "redis-timeout": { type: "string" },
    recipients: { type: "string" },
    ...sinkParseArgsOptions(),
    ...workerParseArgsOptions(),
    help: { type: "boolean", short: "h" },
    ...OPERATIONS_OPTIONS,
  };
  for (const spec of OPTION_SPECS) {
    for (const flag of flagNames(spec)) {
      if (spec.kind === "boolean") {
        options[flag] = { type: "boolean" };
        options[`no-${flag}`] = { type: "boolean" };
      } else {
        options[flag] = { type: "string" };
      }
    }
  }
  return options;
}

function parseCommandLine(
  argv: readonly string[],
  options: NonNullable<ParseArgsConfig["options"]>,
): FlagValues {
  try {
    const parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
    return parsed.values as FlagValues;
  } catch (error) {
    const first = error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
    // "--max-connections -5": the value looks like a flag of its own.
    const ambiguous = /^Option '(--[\w-]+)' argument is ambiguous/.exec(first);
    if (ambiguous) {
      throw new UsageError(
        `${ambiguous[1]} needs a value; one that starts with "-" is written ${ambiguous[1]}=VALUE.`,
      );
    }
    throw new UsageError(first.endsWith(".") ? first : `${first}.`);
  }
}

/**
 * The flags of `mailgate serve ARGV`, over the config file's keys when --config is given, checked as far as
 * they can be without opening anything (every option value, and the rules between options). A mistake in
 * a value that came from the file names the file and the key instead of the flag.
 */
export function parseServeFlags(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ServeFlags {
  const options = serveFlagOptions();
  const commandLine = parseCommandLine(argv, options);
  const configPath = commandLine.config;
  if (typeof configPath !== "string") return serveFlagsFrom(commandLine, env);
  if (configPath === "") throw new UsageError("Invalid value for --config: it needs a file path.");
  const fromFile = readConfigValues(configPath, options as FlagTypes);
  const merged = mergeOverConfig(fromFile, commandLine);
  const keysFromFile = new Set(
    Object.keys(fromFile)
      .filter((flag) => merged[flag] === fromFile[flag])
      .map((flag) => flag.replace(/^no-/, "")),
  );
  try {
    return serveFlagsFrom(merged, env);
  } catch (error) {
    if (!(error instanceof Error) || error instanceof ConfigError) throw error;
    const message = inConfigTerms(inFlagTerms(error.message), configPath, keysFromFile);
    throw message.includes(` in ${configPath}`) ? new ConfigError(message) : new UsageError(message);
  }
}

function serveFlagsFrom(values: FlagValues, env: NodeJS.ProcessEnv): ServeFlags {
  const settings: Record<string, unknown> = {};
  for (const spec of OPTION_SPECS) {
    for (const flag of flagNames(spec)) {
      const value = values[flag];
      if (spec.kind === "boolean") {
        if (value) settings[spec.name] = true;
        if (values[`no-${flag}`]) settings[spec.name] = false;
      } else if (typeof value === "string") {
        settings[spec.name] = spec.kind === "integer" ? wholeNumber(flag, value) : value;
      }
    }
  }
  const maildir = values.maildir;
  if (maildir === "") throw new UsageError("Invalid value for --maildir: it needs a directory path.");
  const authUsers = values["auth-users"];
  const authMode = settings.authMode ?? defaultOf("authMode");
  if (typeof authUsers === "string" && authMode === "forbidden") {
    throw new UsageError(
      "--auth-users needs --auth-mode optional or required: without it AUTH is not offered.",
    );
  }
  const { "accept-domains": acceptDomains, recipients } = values;
  if (recipients === "") throw new UsageError("Invalid value for --recipients: it needs a file path.");
  const sink = parseSinkFlags(values, env);
  if (sink) {
    if (values.maildir !== undefined)
      throw new UsageError("--maildir does not apply with --sink: the sink stores the messages.");
    const ioCmdTimeout =
      (settings.ioCmdTimeout as number | undefined) ?? (defaultOf("ioCmdTimeout") as number);
    if ((sink.publishTimeout ?? 0) >= ioCmdTimeout) {
      throw new UsageError(
        `--sink-publish-timeout (${sink.publishTimeout}) must be lower than --io-cmd-timeout (${ioCmdTimeout}), which bounds the whole hook.`,
      );
    }
  }
  resolveSettings(settings); // every value and the rules between options, before anything is opened
  const operations = parseOperationsFlags(values);
  const workers = parseWorkerFlags(values);
  if (sink?.spool && workers.workers !== 1) {
    // A spool directory belongs to one process (its lock), and a worker's spool must outlive the worker.
    throw new UsageError(
      "--spool does not work with --workers yet (a spool belongs to one process); run one process with --spool, or several instances each with its own spool.",
    );
  }
  return {
    settings: settings as Partial<ServerSettings>,
    maildir: typeof maildir === "string" ? maildir : DEFAULT_MAILDIR,
    authUsers: typeof authUsers === "string" ? authUsers : undefined,
    acceptDomains: typeof acceptDomains === "string" ? parseAcceptDomains(acceptDomains) : [],
    recipients: typeof recipients === "string" ? recipients : undefined,
    limits: limitFlagsFrom(values, env),
    sink,
    operations,
    workers,
    help: values.help === true,
  };
}

/** Environment variable read for --redis when the flag is not given. */
export const REDIS_ENV = "MAILGATE_REDIS";

function limitFlagsFrom(values: FlagValues, env: NodeJS.ProcessEnv): LimitFlags {
  const count = (flag: string) => {
    const value = values[flag];
    return typeof value === "string" ? wholeNumber(flag, value) : 0;
  };
  const redis = typeof values.redis === "string" ? values.redis : env[REDIS_ENV] || undefined;
  if (redis !== undefined && !/^rediss?:\/\//.test(redis)) {
    throw new UsageError(
      `Invalid value for ${typeof values.redis === "string" ? "--redis" : REDIS_ENV}: use redis://[user:password@]host:port[/db] or rediss://... .`,
    );
  }
  const prefix = typeof values["redis-prefix"] === "string" ? values["redis-prefix"] : "mailgate:";
  for (const flag of ["redis-prefix", "redis-timeout"]) {
    if (typeof values[flag] === "string" && redis === undefined) {
      throw new UsageError(`--${flag} needs --redis URL (or ${REDIS_ENV}).`);
    }
  }
  const timeout = values["redis-timeout"];
  return {
    connectionsPerMinute: count("connections-per-minute"),
    messagesPerMinute: count("messages-per-minute"),
    redis,
    redisPrefix: prefix,
    redisTimeout: typeof timeout === "string" ? wholeNumber("redis-timeout", timeout, 1) : 500,
  };
}

function defaultOf(name: keyof ServerSettings): unknown {
  return OPTION_SPECS.find((spec) => spec.name === name)?.default;
}

/**
 * An option error in the user's terms: the options it names ("Invalid option maxConnections", "lower
 * than maxProcessings") become the flags that set them (--max-connections, --max-processings). One-word
 * names (ports, hosts, hostname, lmtp) are also plain words, so they are replaced only as the subject.
 */
export function inFlagTerms(message: string): string {
  return message
    .replace(/^Invalid option (\w+)/, (_, name: string) => `Invalid value for --${kebab(name)}`)
    .replace(/^Invalid (\w+)/, (head, name: string) =>
      OPTION_NAMES.has(name) ? `Invalid --${kebab(name)}` : head,
    )
    .replace(CAMEL_CASE_OPTION, (name) => `--${kebab(name)}`);
}

const OPTION_NAMES = new Set<string>(OPTION_SPECS.map((spec) => spec.name));

const CAMEL_CASE_OPTION = new RegExp(
  `\\b(${[...OPTION_NAMES].filter((name) => /[A-Z]/.test(name)).join("|")})\\b`,
  "g",
);

/** The --help text: every flag with its default and meaning. */
export function serveHelp(): string {
  const lines = [
    "Usage: mailgate serve [options]",
    "",
    "Runs an SMTP server that stores every accepted message in a Maildir before answering 250.",
    "Times are in milliseconds, sizes in bytes.",
    "",
    "Options:",
    "  --config FILE   Read settings from a TOML file whose keys are these flags without their dashes (max-connections = 100); flags on the command line win (default: none).",
    `  --maildir DIR   Maildir to store messages into (default: ${DEFAULT_MAILDIR}); created if missing.`,
    "  --accept-domains LIST",
    "      Accept recipients at these domains only (comma- or space-separated), with --recipients; others get 550 5.1.1 (default: every recipient is accepted).",
    "  --recipients FILE",
    "      Accept only these recipients: one address or @domain a line (# comments), re-read on SIGHUP; with --accept-domains either one accepts (default: every recipient is accepted).",
    "  --connections-per-minute N",
    "      Connections one client address (IPv6: its /64; behind PROXY, the address the header names) may open per minute; the next gets 421 4.7.0 and the address is held back for a minute (default: 0, no limit).",
    "  --messages-per-minute N",
    "      Transactions (MAIL FROM) one client address may start per minute; the next gets 421 4.7.0, as above (default: 0, no limit).",
    "  --redis URL",
    "      Keep the per-address limits (these two and --max-auth-failures-per-ip) in Redis, shared by every instance that uses it; if Redis fails, the limits fail open and mail keeps flowing. Also read from MAILGATE_REDIS (default: none, in memory).",
    "  --redis-prefix PREFIX",
    "      The start of every Redis key; instances that share limits use the same (default: mailgate:).",
    "  --redis-timeout MS",
    "      How long a Redis command may take; past it (or while Redis is away) the limits fail open for that event (default: 500).",
    "  --auth-users FILE",
    '      Accounts for AUTH PLAIN/LOGIN: "user:hash" lines, hashes made by `mailgate hash-password` (default: none, everyone is denied).',
    ...OPERATIONS_HELP,
  ];
  lines.push(...sinkHelpLines(), ...workerHelpLines());
  for (const spec of OPTION_SPECS) {
    const names = flagNames(spec);
    const shown =
      spec.kind === "boolean"
        ? names.map((n) => `--[no-]${n}`).join(", ")
        : names.map((n) => `--${n} ${spec.kind === "integer" ? "N" : "VALUE"}`).join(", ");
    const fallback =
      typeof spec.default === "function"
        ? "this machine's host name"
        : spec.default === "" || spec.default === null
          ? "none"
          : String(spec.default);
    const values = spec.values ? ` One of: ${spec.values.join(", ")}.` : "";
    const own = SERVE_DEFAULTS[spec.name as keyof typeof SERVE_DEFAULTS];
    const defaults = own === undefined ? fallback : `${own}; the library's: ${fallback}`;
    lines.push(`  ${shown}`, `      ${spec.description}${values} (default: ${defaults})`);
  }
  lines.push("  -h, --help      Show this help.");
  return `${lines.join("\n")}\n`;
}
