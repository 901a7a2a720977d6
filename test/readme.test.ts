/** The README documents every option, flag and hook as it lands: this keeps it from falling behind. */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { kebab } from "../src/cli/flags.js";
import { OPTION_SPECS } from "../src/server/options.js";

const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");

test("the README opens with the install-and-run and the test commands", () => {
  const firstBlock = readme.slice(0, readme.indexOf("```", readme.indexOf("```") + 3));
  assert.match(firstBlock, /npm ci && npm start/);
  assert.match(firstBlock, /npm test/);
});

test("every option is in the README with its flag and default", () => {
  for (const spec of OPTION_SPECS) {
    const row = readme.split("\n").find((line) => line.startsWith(`| \`${spec.name}\` |`));
    assert.ok(row, `option ${spec.name} has a row`);
    assert.ok(
      row.includes(`--${spec.kind === "boolean" ? "[no-]" : ""}${kebab(spec.name)}`),
      `${spec.name} flag`,
    );
    if (typeof spec.default !== "function")
      assert.ok(row.includes(JSON.stringify(spec.default)), `${spec.name} default`);
  }
});

test("every hook is in the README", async () => {
  const source = await readFile(new URL("../../src/server/server.ts", import.meta.url), "utf8");
  const hooks = [...source.matchAll(/^\s+"(on[A-Z]\w+)",$/gm)].map((m) => m[1]);
  assert.ok(hooks.length >= 14);
  for (const hook of hooks) assert.ok(readme.includes(`\`${hook}(`), `hook ${hook}`);
});
