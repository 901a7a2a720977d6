/**
 * `mailgate serve` flags: one per server option, named after it in kebab-case, taken from the same
 * table that validates the options (src/server/options.ts), so the two cannot drift apart.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { OPTION_SPECS, type OptionSpec, type ServerSettings } from "../server/options.js";
import { MAILDIR_FLUSHES, type MaildirFlush } from "../store/maildir.js";
import {
  OPERATIONS_HELP,
  OPERATIONS_OPTIONS,
  type OperationsFlags,
  parseOperationsFlags,
} from "./operations-flags.js";
import { UsageError } from "./usage-error.js";

export { UsageError };

export interface ServeFlags {
  settings: Partial<ServerSettings>;
  maildir: string;
  /** --maildir-flush: how stored messages are made durable. */
  maildirFlush: MaildirFlush;
  /** --auth-users FILE: accounts for AUTH. */
  authUsers: string | undefined;
  /** --metrics-listen, --log-format. */
  operations: OperationsFlags;
  help: boolean;
}

export const DEFAULT_MAILDIR = "./mail";

/** Shorter spellings users reach for first. */
const ALIASES: Record<string, keyof ServerSettings> = {
  pipelining: "pipeliningExtension",
  internationalization: "internationalizationExtensions",
};

export function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function flagNames(spec: OptionSpec): string[] {
  const aliases = Object.keys(ALIASES).filter((alias) => ALIASES[alias] === spec.name);
  return [kebab(spec.name), ...aliases];
}

export function parseServeFlags(argv: readonly string[]): ServeFlags {
  const options: NonNullable<ParseArgsConfig["options"]> = {
    maildir: { type: "string" },
    "maildir-flush": { type: "string" },
    "auth-users": { type: "string" },
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
  let values: Record<string, string | boolean | undefined>;
  try {
    const parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
    values = parsed.values as Record<string, string | boolean | undefined>;
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

  const settings: Record<string, unknown> = {};
  for (const spec of OPTION_SPECS) {
    for (const flag of flagNames(spec)) {
      const value = values[flag];
      if (spec.kind === "boolean") {
        if (value) settings[spec.name] = true;
        if (values[`no-${flag}`]) settings[spec.name] = false;
      } else if (typeof value === "string") {
        settings[spec.name] = spec.kind === "integer" ? parseInteger(flag, value) : value;
      }
    }
  }
  const maildir = values.maildir;
  if (maildir === "") throw new UsageError("Invalid value for --maildir: it needs a directory path.");
  const flush = values["maildir-flush"] ?? "auto";
  if (!MAILDIR_FLUSHES.includes(flush as MaildirFlush)) {
    throw new UsageError(
      `Invalid value for --maildir-flush: "${flush}"; it accepts one of ${MAILDIR_FLUSHES.join(", ")}.`,
    );
  }
  const authUsers = values["auth-users"];
  const authMode = settings.authMode ?? OPTION_SPECS.find((spec) => spec.name === "authMode")?.default;
  if (typeof authUsers === "string" && authMode === "forbidden") {
    throw new UsageError(
      "--auth-users needs --auth-mode optional or required: without it AUTH is not offered.",
    );
  }
  return {
    settings: settings as Partial<ServerSettings>,
    maildir: typeof maildir === "string" ? maildir : DEFAULT_MAILDIR,
    maildirFlush: flush as MaildirFlush,
    authUsers: typeof authUsers === "string" ? authUsers : undefined,
    operations: parseOperationsFlags(values),
    help: values.help === true,
  };
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

function parseInteger(flag: string, value: string): number {
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(`Invalid value for --${flag}: "${value}"; it accepts a whole number.`);
  }
  return Number(value);
}

/** The --help text: every flag with its default and meaning. */
export function serveHelp(): string {
  const lines = [
    "Usage: mailgate serve [options]",
    "",
    "Runs an SMTP server that stores every accepted message in a Maildir before answering 250.",
    "Times are in milliseconds, sizes in bytes.",
    "",
    "Options:",
    `  --maildir DIR   Maildir to store messages into (default: ${DEFAULT_MAILDIR}); created if missing.`,
    "  --maildir-flush MODE",
    "      How a message is made durable before its 250: fsync (each file on its own), syncfs (one flush of the file system shared by concurrent deliveries; Linux 5.8+) or auto (syncfs where available, else fsync) (default: auto).",
    "  --auth-users FILE",
    '      Accounts for AUTH PLAIN/LOGIN: "user:hash" lines, hashes made by `mailgate hash-password` (default: none, everyone is denied).',
    ...OPERATIONS_HELP,
  ];
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
    lines.push(`  ${shown}`, `      ${spec.description}${values} (default: ${fallback})`);
  }
  lines.push("  -h, --help      Show this help.");
  return `${lines.join("\n")}\n`;
}
