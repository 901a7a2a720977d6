#!/usr/bin/env node
/**
 * The `mailgate` command. Errors a user can cause are printed as one sentence (and the usage line for
 * bad flags, exit status 2), never as a stack trace.
 */
import { readFileSync } from "node:fs";
import { SmtpServer } from "../server/server.js";
import { hashPassword } from "./accounts.js";
import { ConfigError } from "./config-file.js";
import { UsageError } from "./flag-values.js";
import { inFlagTerms, parseServeFlags, serveHelp } from "./flags.js";
import { serve } from "./serve.js";
import { serveWithWorkers } from "./serve-workers.js";

const USAGE =
  "Usage: mailgate serve [--config FILE] [options]   (mailgate serve --help lists them)\n       mailgate config check FILE\n       mailgate hash-password < password-file";

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8"));
  return String(pkg.version);
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "serve": {
      const flags = parseServeFlags(rest);
      if (flags.help) {
        process.stdout.write(serveHelp());
        return 0;
      }
      await (flags.workers.workers === 1 ? serve(flags) : serveWithWorkers(flags));
      return 0;
    }
    case "config": {
      const [action, file, ...extra] = rest;
      if (action !== "check" || file === undefined || extra.length > 0) {
        throw new UsageError("config takes one action: mailgate config check FILE.");
      }
      const flags = parseServeFlags(["--config", file], {});
      // The server checks what the flags cannot alone (certificate files, SNI entries); nothing is opened.
      new SmtpServer({ ...flags.settings, logger: { debug() {}, info() {}, warn() {}, error() {} } });
      process.stdout.write(`${file}: ok\n`);
      return 0;
    }
    case "hash-password": {
      // The password comes on stdin (never on the command line, where ps and shell history see it).
      if (rest.length > 0)
        throw new UsageError("hash-password takes no arguments: it reads the password on stdin.");
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      const password = Buffer.concat(chunks)
        .toString("utf8")
        .replace(/\r?\n$/, "");
      if (password === "") throw new UsageError("hash-password reads the password on stdin; none came.");
      process.stdout.write(`${await hashPassword(password)}\n`);
      return 0;
    }
    case "--version":
    case "-v":
      process.stdout.write(`${version()}\n`);
      return 0;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(
        `${USAGE}\n\nCommands:\n  serve           run an SMTP server that stores mail in a Maildir (or hands it to a sink)\n  config check    check a config file (TOML) without starting\n  hash-password   read a password on stdin, print its scrypt hash for --auth-users\n`,
      );
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`Unknown command "${command}".`);
  }
}

main(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (error: unknown) => {
    // Bad flags and bad option values are the user's to fix: say what, show the usage, exit 2. Option
    // errors name library options ("Invalid option crlfMode"); here the user typed flags.
    // A config file's mistake names the file and key: no usage line, but the same status as a bad flag.
    const isUsage = error instanceof UsageError || error instanceof TypeError || error instanceof RangeError;
    const text = error instanceof Error ? error.message : String(error);
    const message = isUsage && !(error instanceof UsageError) ? inFlagTerms(text) : text;
    process.stderr.write(`mailgate: ${message}\n${isUsage ? `${USAGE}\n` : ""}`);
    process.exitCode = isUsage || error instanceof ConfigError ? 2 : 1;
  },
);
