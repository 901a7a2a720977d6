/** What `npm pack` ships: the built code and its types, the README, CHANGELOG and LICENSE, nothing dangling. */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { packedFiles } from "../helpers/packing.js";

const root = new URL("../../../", import.meta.url);

test("npm pack ships the code, types, LICENSE and docs, and source maps that carry their sources", async () => {
  const files = await packedFiles();
  for (const required of [
    "LICENSE",
    "README.md",
    "CHANGELOG.md",
    "build/src/index.js",
    "build/src/index.d.ts",
    "build/src/cli/main.js",
    "docs/README.md",
    "docs/cookbook.md",
    "docs/options.md",
    "examples/cookbook/subclassing.ts",
  ]) {
    assert.ok(files.includes(required), `${required} is packed`);
  }
  assert.ok(
    !files.some((file) => file.startsWith("build/test/") || file.startsWith("src/")),
    "no tests or sources",
  );
  // The maps point at src/*.ts, which is not shipped: they must carry the sources themselves.
  for (const map of files.filter((file) => file.endsWith(".js.map"))) {
    const parsed = JSON.parse(await readFile(new URL(map, root), "utf8")) as { sourcesContent?: unknown[] };
    assert.ok(
      Array.isArray(parsed.sourcesContent) && parsed.sourcesContent.length > 0,
      `${map} has its sources`,
    );
  }
});
