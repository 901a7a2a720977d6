/** The README documents every option, flag and hook as it lands: this keeps it from falling behind. */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { kebab } from "../src/cli/flag-values.js";
import { SINK_FLAG_SPECS } from "../src/cli/sink-flags.js";
import { HOOK_NAMES } from "../src/server/hook-binding.js";
import { OPTION_SPECS } from "../src/server/options.js";

const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");

test("the README opens with the install-and-run and the test commands", () => {
  const firstBlock = readme.slice(0, readme.indexOf("```", readme.indexOf("```") + 3));
  assert.match(firstBlock, /npm ci && npm start/);
  assert.match(firstBlock, /npm test/);
});

/** The server's option table (sink sections have option tables of their own). */
const optionsSection = readme.slice(
  readme.indexOf("\n## Options\n"),
  readme.indexOf("\n## ", readme.indexOf("\n## Options\n") + 5),
);

test("every option is in the README with its flag and default", () => {
  for (const spec of OPTION_SPECS) {
    const row = optionsSection.split("\n").find((line) => line.startsWith(`| \`${spec.name}\` |`));
    assert.ok(row, `option ${spec.name} has a row`);
    assert.ok(
      row.includes(`--${spec.kind === "boolean" ? "[no-]" : ""}${kebab(spec.name)}`),
      `${spec.name} flag`,
    );
    if (typeof spec.default !== "function")
      assert.ok(row.includes(JSON.stringify(spec.default)), `${spec.name} default`);
  }
});

test("every sink flag is in the README's serve table", () => {
  for (const spec of SINK_FLAG_SPECS) {
    assert.ok(readme.includes(`| \`--${spec.flag} ${spec.value}\` |`), `--${spec.flag} has a row`);
  }
});

test("every hook is in the README", () => {
  for (const hook of HOOK_NAMES) assert.ok(readme.includes(`\`${hook}(`), `hook ${hook}`);
});
