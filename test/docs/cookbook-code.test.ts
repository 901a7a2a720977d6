/** docs/cookbook.md shows its recipes' files word for word, and every file of examples/cookbook/ has one. */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../helpers/packing.js";

const cookbook = await readFile(join(REPO_ROOT, "docs", "cookbook.md"), "utf8");

/** Each recipe: the example file it links, then its code block. */
const recipes = [
  ...cookbook.matchAll(/\]\(\.\.\/(examples\/cookbook\/[\w-]+\.ts)\):\n\n```ts\n([\s\S]*?)```/g),
].map(([, file, code]) => ({ file: file as string, code: code as string }));

test("every code block of the cookbook is in the file it links, word for word", async () => {
  assert.equal(recipes.length, (cookbook.match(/^```ts$/gm) ?? []).length, "each block follows its link");
  for (const { file, code } of recipes) {
    const source = await readFile(join(REPO_ROOT, file), "utf8");
    assert.ok(source.includes(code), `${file} holds the cookbook's code (run: update docs/cookbook.md)`);
  }
});

test("every file of examples/cookbook/ is a recipe of the cookbook", async () => {
  const files = (await readdir(join(REPO_ROOT, "examples", "cookbook"))).map(
    (name) => `examples/cookbook/${name}`,
  );
  assert.deepEqual(recipes.map((recipe) => recipe.file).sort(), files.sort());
});
