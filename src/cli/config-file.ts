/**
 * `mailgate serve --config FILE`: a TOML file whose keys are the serve flags without their dashes
 * (`max-connections = 100`, `tls-mode = "required"`, `pipelining = false`), so that a setting is spelled
 * the same in a file, on a command line and in --help. The file is turned into the values a command line
 * would give, then checked by the same code as the flags; flags given on the command line win.
 */
import { readFileSync } from "node:fs";
import { parse, TomlError } from "smol-toml";
import { kebab } from "./flag-values.js";

/** What util.parseArgs knows of each flag: its type. */
export type FlagTypes = Readonly<Record<string, { type: "string" | "boolean" }>>;

/** Flag values as util.parseArgs gives them. */
export type FlagValues = Record<string, string | boolean | undefined>;

/** A mistake in a config file: one sentence that names the file and the key. */
export class ConfigError extends Error {}

/** Keys a config file cannot hold: they only make sense on a command line. */
const COMMAND_LINE_ONLY = new Set(["config", "help"]);

/**
 * The flag values that the TOML file at `path` sets. Booleans set `name` or `no-name`; whole numbers and
 * strings become the strings a command line would carry; an array of strings or numbers becomes a
 * comma-separated list (`ports = [2525, 2526]`, `hosts = ["127.0.0.1", "::1"]`).
 */
export function readConfigValues(path: string, flags: FlagTypes): FlagValues {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(
      `Cannot read the config file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`,
    );
  }
  let table: Record<string, unknown>;
  try {
    table = parse(text);
  } catch (error) {
    const why =
      error instanceof TomlError
        ? `line ${error.line}, column ${error.column}: ${error.message.split("\n")[0]}`
        : String(error);
    throw new ConfigError(`${path} is not valid TOML (${why}).`);
  }
  const values: FlagValues = {};
  for (const [key, value] of Object.entries(table)) {
    const type = COMMAND_LINE_ONLY.has(key) ? undefined : flags[key]?.type;
    if (type === undefined || key.startsWith("no-")) throw new ConfigError(unknownKey(path, key, flags));
    if (type === "boolean") {
      if (typeof value !== "boolean") throw new ConfigError(`${path}: ${key} must be true or false.`);
      values[value || flags[`no-${key}`] === undefined ? key : `no-${key}`] = true;
      continue;
    }
    values[key] = stringValue(path, key, value);
  }
  return values;
}

/**
 * The command line's values over the file's: a flag given on the command line replaces the file's key,
 * and `--no-name` replaces `name = true` (and the other way round).
 */
export function mergeOverConfig(fromFile: FlagValues, fromCommandLine: FlagValues): FlagValues {
  const merged = { ...fromFile };
  for (const [flag, value] of Object.entries(fromCommandLine)) {
    if (value === undefined) continue;
    const base = flag.startsWith("no-") ? flag.slice(3) : flag;
    delete merged[base];
    delete merged[`no-${base}`];
    merged[flag] = value;
  }
  return merged;
}

/**
 * Rewrites a message about flags in the terms of the file for the flags that came from it:
 * "Invalid value for --max-connections" becomes "Invalid value for max-connections in mailgate.toml".
 */
export function inConfigTerms(message: string, path: string, keysFromFile: ReadonlySet<string>): string {
  return message.replace(/--(?:no-)?([a-z0-9][a-z0-9-]*)/g, (whole, flag: string) =>
    keysFromFile.has(flag) ? `${flag} in ${path}` : whole,
  );
}

function stringValue(path: string, key: string, value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isInteger(value)) return String(value);
  if (
    Array.isArray(value) &&
    value.every((item) => typeof item === "string" || (typeof item === "number" && Number.isInteger(item)))
  ) {
    return value.join(", ");
  }
  const got = Array.isArray(value)
    ? "an array of other values"
    : typeof value === "number"
      ? "a fraction"
      : value !== null && typeof value === "object"
        ? "a table or a date"
        : typeof value;
  throw new ConfigError(
    `${path}: ${key} must be a string, a whole number or an array of them (it is ${got}).`,
  );
}

function unknownKey(path: string, key: string, flags: FlagTypes): string {
  if (key.startsWith("no-") && flags[key.slice(3)])
    return `${path}: write ${key.slice(3)} = false, not ${key}.`;
  const spelled = kebab(key.replaceAll("_", "-"));
  const hint =
    spelled !== key && flags[spelled] && !COMMAND_LINE_ONLY.has(spelled) ? ` (did you mean ${spelled}?)` : "";
  return `${path}: ${key} is not a mailgate setting${hint}; the keys are the serve flags without their dashes (mailgate serve --help).`;
}
