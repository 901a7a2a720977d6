/**
 * The README and the manual in docs/ link only to files that exist and that the package ships, so that
 * neither a clone nor an installed package has a link pointing at nothing.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { dirname, join, normalize } from "node:path";
import { test } from "node:test";
import { packedFiles, REPO_ROOT } from "./helpers/packing.js";

test("every relative link of the shipped Markdown leads to a shipped file or folder", async () => {
  const shipped = await packedFiles();
  const isShipped = (path: string) =>
    shipped.includes(path) || shipped.some((file) => file.startsWith(`${path.replace(/\/$/, "")}/`));
  const broken: string[] = [];
  for (const page of shipped.filter((file) => file.endsWith(".md"))) {
    const text = await readFile(join(REPO_ROOT, page), "utf8");
    for (const [, target] of text.matchAll(/\]\(([^)\s#]+)(#[^)]*)?\)/g)) {
      if (!target || /^[a-z]+:/i.test(target)) continue;
      const path = normalize(join(dirname(page), target));
      if (!isShipped(path)) broken.push(`${page} -> ${target}`);
    }
  }
  assert.deepEqual(broken, []);
});
