/**
 * The README is the short front door: it opens with the two commands (CI and a newcomer run exactly
 * these), stays short, and leads into the manual in docs/, where everything else is.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../helpers/packing.js";

const readme = await readFile(join(REPO_ROOT, "README.md"), "utf8");

test("the README opens with the install-and-run and the test commands", () => {
  const firstBlock = readme.slice(0, readme.indexOf("```", readme.indexOf("```") + 3));
  assert.match(firstBlock, /npm ci && npm start/);
  assert.match(firstBlock, /npm test/);
});

test("the README stays a front door that leads into the manual", () => {
  const lines = readme.split("\n").length;
  assert.ok(lines <= 200, `README.md has ${lines} lines: move the details into a page of docs/`);
  assert.ok(readme.includes("](docs/README.md)"), "the README links the manual's index");
});
