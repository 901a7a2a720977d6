/**
 * The README and the manual in docs/ link only to files that exist and that the package ships, so that
 * neither a clone nor an installed package has a link pointing at nothing; and a link to a heading of a
 * page names a heading that page has.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { dirname, join, normalize } from "node:path";
import { test } from "node:test";
import { packedFiles, REPO_ROOT } from "../helpers/packing.js";

const shipped = await packedFiles();
const pages = shipped.filter((file) => file.endsWith(".md"));

/** Each relative link of a shipped page: its target path from the package root (the page itself for "#x"), and its anchor. */
async function relativeLinks(): Promise<{ page: string; target: string; path: string; anchor: string }[]> {
  const links = [];
  for (const page of pages) {
    const text = await readFile(join(REPO_ROOT, page), "utf8");
    for (const [, target = "", anchor = ""] of text.matchAll(/\]\(([^)\s#]*)(?:#([^)\s]*))?\)/g)) {
      if (/^[a-z]+:/i.test(target) || (!target && !anchor)) continue;
      links.push({ page, target, path: target ? normalize(join(dirname(page), target)) : page, anchor });
    }
  }
  return links;
}

/** The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens. */
function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const [, heading = ""] of markdown.replace(/^```[\s\S]*?^```/gm, "").matchAll(/^#{1,6} (.+)$/gm)) {
    const anchor = heading
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, "")
      .replaceAll(" ", "-");
    const count = seen.get(anchor) ?? 0;
    seen.set(anchor, count + 1);
    anchors.add(count === 0 ? anchor : `${anchor}-${count}`);
  }
  return anchors;
}

test("every relative link of the shipped Markdown leads to a shipped file or folder", async () => {
  const isShipped = (path: string) =>
    shipped.includes(path) || shipped.some((file) => file.startsWith(`${path.replace(/\/$/, "")}/`));
  const broken = (await relativeLinks())
    .filter(({ target, path }) => target && !isShipped(path))
    .map(({ page, target }) => `${page} -> ${target}`);
  assert.deepEqual(broken, []);
});

test("every link to a heading of a shipped page names a heading it has", async () => {
  const broken: string[] = [];
  for (const { page, target, path, anchor } of await relativeLinks()) {
    if (!anchor || !path.endsWith(".md")) continue;
    const anchors = headingAnchors(await readFile(join(REPO_ROOT, path), "utf8"));
    if (!anchors.has(anchor)) broken.push(`${page} -> ${target}#${anchor}`);
  }
  assert.deepEqual(broken, []);
});
