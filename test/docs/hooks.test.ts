/** docs/hooks.md has a row in its hook table for every hook the server knows (HOOK_NAMES). */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { HOOK_NAMES } from "../../src/server/hook-binding.js";
import { REPO_ROOT } from "../helpers/packing.js";

const page = await readFile(join(REPO_ROOT, "docs", "hooks.md"), "utf8");

test("every hook is in the hooks page's table", () => {
  for (const hook of HOOK_NAMES) assert.ok(page.includes(`| \`${hook}(`), `hook ${hook}`);
});
