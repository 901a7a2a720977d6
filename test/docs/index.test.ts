/** The manual's index, docs/README.md, leads to every page of docs/. */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../helpers/packing.js";

test("docs/README.md links every page of the manual", async () => {
  const docs = join(REPO_ROOT, "docs");
  const index = await readFile(join(docs, "README.md"), "utf8");
  const pages = (await readdir(docs)).filter((name) => name.endsWith(".md") && name !== "README.md");
  assert.deepEqual(
    pages.filter((page) => !index.includes(`](${page})`)),
    [],
    "pages the index does not link",
  );
});
