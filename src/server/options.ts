/**
 * The server's settings resolved from its options: each value checked against the option table
 * (option-table.ts), defaults filled in, and the rules between options.
 */
import { parseHostItems, parsePortItems } from "./addresses.js";
import { OPTION_SPECS, type OptionSpec, type ServerSettings } from "./option-table.js";

// The table's names, where the CLI, the docs script and the tests have always imported them from.
export { OPTION_SPECS, type OptionSpec, SEVERITIES, type ServerSettings } from "./option-table.js";

/** Anything with these methods can log for the server: console, pino, winston... */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** Resolves and validates settings: a bad value throws one sentence naming the option and what it accepts. */
export function resolveSettings(given: Partial<Record<keyof ServerSettings, unknown>>): ServerSettings {
  const settings: Record<string, unknown> = {};
  for (const spec of OPTION_SPECS) {
    const raw = given[spec.name];
    settings[spec.name] =
      raw === undefined
        ? typeof spec.default === "function"
          ? spec.default()
          : spec.default
        : check(spec, raw);
  }
  const result = settings as unknown as ServerSettings;
  if (result.greetingDelay >= result.ioCmdTimeout) {
    throw new RangeError(
      `Invalid option greetingDelay: ${result.greetingDelay} is not shorter than ioCmdTimeout (${result.ioCmdTimeout}); the client would time out before its greeting.`,
    );
  }
  if (result.maxConnections < result.maxProcessings) {
    throw new RangeError(
      `Invalid option maxConnections: ${result.maxConnections} is lower than maxProcessings (${result.maxProcessings}); it must be at least as high.`,
    );
  }
  return result;
}

function check(spec: OptionSpec, value: unknown): unknown {
  const fail = (accepts: string): never => {
    throw new TypeError(`Invalid option ${spec.name}: ${JSON.stringify(value)}; it accepts ${accepts}.`);
  };
  switch (spec.kind) {
    case "string":
      if (typeof value !== "string" || value.trim() === "" || /[\r\n\0]/.test(value))
        fail("a non-empty string");
      return value;
    case "path":
      if (typeof value !== "string" || value.includes("\0")) fail("a file path");
      return value;
    case "mode": {
      if (value === null) return null;
      const octal = typeof value === "string" && /^(0o?)?[0-7]{3,4}$/.test(value);
      const mode = octal ? Number.parseInt(value.replace(/^0o?/, ""), 8) : value;
      if (typeof mode !== "number" || !Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
        fail('a file mode such as 0o660 (or the octal string "660")');
      }
      if (typeof value === "number" && value > 0o777) {
        // 666 (decimal, since 0666 is a syntax error in ESM) would be mode 1232: sticky bit, odd rights.
        throw new RangeError(
          `Invalid option ${spec.name}: ${value} is decimal (octal ${value.toString(8)}); write the mode in octal, 0o${value} or the string "${value}".`,
        );
      }
      return mode;
    }
    case "integer": {
      const min = spec.min ?? 0;
      const max = spec.max ?? Number.MAX_SAFE_INTEGER;
      if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
        fail(spec.max === undefined ? `an integer of at least ${min}` : `an integer from ${min} to ${max}`);
      }
      return value;
    }
    case "boolean":
      if (typeof value !== "boolean") fail("true or false");
      return value;
    case "enum":
      if (typeof value !== "string" || !spec.values?.includes(value))
        fail(`one of ${spec.values?.join(", ")}`);
      return value;
    case "ports": {
      if (typeof value !== "string" && typeof value !== "number" && !Array.isArray(value)) {
        fail('a port number or a string such as "2525, 3535:4545"');
      }
      const ports = Array.isArray(value) ? value.join(",") : String(value);
      parsePortItems(ports); // throws its own sentence
      return ports;
    }
    case "hosts": {
      if (typeof value !== "string" && !Array.isArray(value))
        fail('a string such as "127.0.0.1, ::1" or "*"');
      const hosts = Array.isArray(value) ? value.join(",") : String(value);
      parseHostItems(hosts);
      return hosts;
    }
  }
}
