/** docs/serve.md, the page of `mailgate serve`, has a row in its flag table for every sink flag. */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { SINK_FLAG_SPECS } from "../../src/cli/sink-flags.js";
import { REPO_ROOT } from "../helpers/packing.js";

const page = await readFile(join(REPO_ROOT, "docs", "serve.md"), "utf8");

test("every sink flag is in the serve page's flag table", () => {
  for (const spec of SINK_FLAG_SPECS) {
    assert.ok(page.includes(`| \`--${spec.flag} ${spec.value}\` |`), `--${spec.flag} has a row`);
  }
});
