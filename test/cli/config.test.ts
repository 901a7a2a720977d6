/**
 * `mailgate serve --config FILE` and `mailgate config check FILE`: a TOML file keyed by the serve flags,
 * checked by the same code as the flags, with the command line winning; mistakes name the file and key.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { kebab } from "../../src/cli/flag-values.js";
import { parseServeFlags } from "../../src/cli/flags.js";
import { OPTION_SPECS, resolveSettings } from "../../src/server/options.js";
import { MAIN, startServe } from "../helpers/serve-process.js";

const run = promisify(execFile);

/** A value for every option: booleans flipped from their default, the others at a valid non-default where easy. */
const SAMPLE: Record<string, string | number | boolean> = Object.fromEntries(
  OPTION_SPECS.flatMap((spec): [string, string | number | boolean][] => {
    if (spec.kind === "boolean") return [[spec.name, !spec.default]];
    if (typeof spec.default === "function") return [[spec.name, "mx.example.test"]];
    if (spec.default === null) return [];
    if (spec.kind === "integer") return [[spec.name, (spec.default as number) + 1]];
    return [[spec.name, spec.default as string]];
  }),
);

function toml(values: Record<string, string | number | boolean>): string {
  return Object.entries(values)
    .map(([name, value]) => `${kebab(name)} = ${typeof value === "string" ? JSON.stringify(value) : value}`)
    .join("\n");
}

function flagsFor(values: Record<string, string | number | boolean>): string[] {
  return Object.entries(values).map(([name, value]) =>
    typeof value === "boolean" ? `--${value ? "" : "no-"}${kebab(name)}` : `--${kebab(name)}=${value}`,
  );
}

async function check(file: string): Promise<{ code: number; out: string }> {
  return run(process.execPath, [MAIN, "config", "check", file]).then(
    ({ stdout }) => ({ code: 0, out: stdout }),
    (error: { code: number; stderr: string }) => ({ code: error.code, out: error.stderr }),
  );
}

describe("config file", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "mailgate-config-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test("a file with every option gives the settings the same flags give", async () => {
    // maxConnections >= maxProcessings, and authUsers needs AUTH on: keep the sample within the rules.
    const file = join(dir, "every.toml");
    await writeFile(file, `${toml(SAMPLE)}\n`);
    const fromFile = parseServeFlags(["--config", file], {});
    const fromFlags = parseServeFlags(flagsFor(SAMPLE), {});
    assert.deepEqual(fromFile.settings, fromFlags.settings);
    assert.equal(Object.keys(fromFile.settings).length, Object.keys(SAMPLE).length, "every option was read");
    assert.deepEqual(resolveSettings(fromFile.settings), resolveSettings(fromFlags.settings));
    assert.deepEqual(await check(file), { code: 0, out: `${file}: ok\n` });
  });

  test("flags on the command line win over the file, --no-x over x = true", async () => {
    const file = join(dir, "override.toml");
    await writeFile(
      file,
      'max-connections = 200\npipelining = true\nhosts = ["127.0.0.1", "::1"]\nports = [2525, 2526]\n',
    );
    const flags = parseServeFlags(["--config", file, "--max-connections", "300", "--no-pipelining"], {});
    assert.equal(flags.settings.maxConnections, 300);
    assert.equal(flags.settings.pipeliningExtension, false);
    assert.equal(flags.settings.hosts, "127.0.0.1, ::1");
    assert.equal(flags.settings.ports, "2525, 2526");
  });

  test("mistakes are one sentence naming the file and the key, exit status 2", async () => {
    const cases: [string, RegExp][] = [
      ["maxConnections = 5", /: maxConnections is not a mailgate setting \(did you mean max-connections\?\)/],
      [
        'max-connections = "ten"',
        /Invalid value for max-connections in .*bad\.toml: "ten"; it accepts a whole number/,
      ],
      [
        "max-connections = 1.5",
        /: max-connections must be a string, a whole number or an array of them \(it is a fraction\)/,
      ],
      [
        "max-connections = 5",
        /Invalid value for max-connections in .*bad\.toml: 5 is lower than --max-processings/,
      ],
      ['pipelining = "no"', /: pipelining must be true or false/],
      ["no-pipelining = true", /: write pipelining = false, not no-pipelining/],
      ['crlf-mode = "x"', /Invalid value for crlf-mode in .*bad\.toml: "x"/],
      ["help = true", /: help is not a mailgate setting/],
      ["max-connections = ", /bad\.toml is not valid TOML \(line 1, column/],
      [
        '[sink]\nurl = "amqp://h/"',
        /: sink must be a string, a whole number or an array of them \(it is a table/,
      ],
    ];
    const file = join(dir, "bad.toml");
    for (const [text, expected] of cases) {
      await writeFile(file, `${text}\n`);
      const { code, out } = await check(file);
      assert.equal(code, 2, `${text}: ${out}`);
      assert.match(out.split("\n")[0] ?? "", expected, text);
      assert.equal(out.trim().split("\n").length, 1, `${text}: one line, no usage`);
    }
    const missing = await check(join(dir, "absent.toml"));
    assert.equal(missing.code, 2);
    assert.match(missing.out, /Cannot read the config file .*absent\.toml: ENOENT\./);
  });

  test("mailgate serve --config starts with the file's settings", async () => {
    const file = join(dir, "serve.toml");
    await writeFile(file, `hosts = "127.0.0.1"\nmaildir = "${join(dir, "mail")}"\nmax-recipients = 2\n`);
    const served = await startServe(dir, ["--config", file]);
    try {
      const { stdout } = await run("python3", [
        "-c",
        [
          "import smtplib,sys",
          "s=smtplib.SMTP('127.0.0.1', int(sys.argv[1])); s.ehlo(); s.mail('a@x.test')",
          "print([s.rcpt(r)[0] for r in ('b@y.test','c@y.test','d@y.test')]); s.quit()",
        ].join("\n"),
        String(served.port),
      ]);
      assert.equal(stdout.trim(), "[250, 250, 452]", "max-recipients = 2 from the file holds");
      assert.match(served.output(), new RegExp(`into Maildir ${join(dir, "mail")}`));
    } finally {
      served.child.kill("SIGKILL");
    }
  });

  test("the annotated example config is valid", async () => {
    const example = new URL("../../../examples/mailgate.toml", import.meta.url).pathname;
    const { code, out } = await check(example);
    assert.equal(code, 0, out);
  });
});
