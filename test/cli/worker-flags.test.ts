/** --workers, --worker-drain-timeout and --worker-hang-timeout: parsed, checked, listed in --help. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError } from "../../src/cli/flag-values.js";
import { parseServeFlags, serveHelp } from "../../src/cli/flags.js";

test("--workers takes a whole number from 1 or auto; 1 (a single process) by default", () => {
  const defaults = { drainTimeout: 30_000, hangTimeout: 30_000 };
  assert.deepEqual(parseServeFlags([]).workers, { workers: 1, ...defaults });
  assert.deepEqual(parseServeFlags(["--workers", "auto"]).workers, { workers: "auto", ...defaults });
  assert.deepEqual(
    parseServeFlags(["--workers", "4", "--worker-drain-timeout", "5000", "--worker-hang-timeout", "0"])
      .workers,
    { workers: 4, drainTimeout: 5000, hangTimeout: 0 },
  );
  assert.throws(() => parseServeFlags(["--workers", "0"]), UsageError);
  assert.throws(() => parseServeFlags(["--workers", "two"]), UsageError);
  assert.throws(
    () => parseServeFlags(["--worker-drain-timeout", "5000"]),
    /--worker-drain-timeout applies only with --workers above 1 or auto/,
  );
  assert.throws(
    () => parseServeFlags(["--worker-hang-timeout", "5000"]),
    /--worker-hang-timeout applies only with --workers above 1 or auto/,
  );
  assert.throws(() => parseServeFlags(["--workers", "2", "--worker-hang-timeout", "-1"]), UsageError);
  assert.throws(
    () => parseServeFlags(["--workers", "2", "--worker-hang-timeout", "500"]),
    /--worker-hang-timeout: "500"; it accepts 0 \(no watch\) or a whole number of at least 1000/,
  );
});

test("--help lists the flags with their defaults", () => {
  const help = serveHelp();
  assert.match(help, /--workers N\|auto\n .*\(default: 1, a single process\)/);
  assert.match(help, /--worker-drain-timeout MS\n .*\(default: 30000\)/);
  assert.match(help, /--worker-hang-timeout MS\n .*\(default: 30000\)/);
});
