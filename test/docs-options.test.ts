/** docs/options.md is generated from the option table: this fails when it is stale. */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { OPTIONS_DOC_PATH, renderOptionsDoc } from "../scripts/options-doc.js";

test("docs/options.md is what `npm run docs:options` renders from OPTION_SPECS", async () => {
  const onDisk = await readFile(OPTIONS_DOC_PATH, "utf8");
  assert.ok(onDisk === renderOptionsDoc(), "docs/options.md is stale: run `npm run docs:options`");
});
