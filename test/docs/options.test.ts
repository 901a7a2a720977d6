/**
 * docs/options.md, the option reference, is generated from the option table: this fails when it is
 * stale, and checks on the page itself that every option of OPTION_SPECS has its row, flag and default.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { OPTIONS_DOC_PATH, renderOptionsDoc } from "../../scripts/options-doc.js";
import { kebab } from "../../src/cli/flag-values.js";
import { OPTION_SPECS } from "../../src/server/options.js";

const onDisk = await readFile(OPTIONS_DOC_PATH, "utf8");

test("docs/options.md is what `npm run docs:options` renders from OPTION_SPECS", () => {
  assert.ok(onDisk === renderOptionsDoc(), "docs/options.md is stale: run `npm run docs:options`");
});

test("every option is in docs/options.md with its flag and default", () => {
  for (const spec of OPTION_SPECS) {
    const row = onDisk.split("\n").find((line) => line.startsWith(`| \`${spec.name}\` |`));
    assert.ok(row, `option ${spec.name} has a row`);
    assert.ok(
      row.includes(`--${spec.kind === "boolean" ? "[no-]" : ""}${kebab(spec.name)}`),
      `${spec.name} flag`,
    );
    if (typeof spec.default !== "function")
      assert.ok(row.includes(JSON.stringify(spec.default)), `${spec.name} default`);
  }
});
