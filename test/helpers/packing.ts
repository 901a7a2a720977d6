/**
 * What `npm pack` makes of this repository, for the package tests: the list of files it ships, and a
 * real tarball packed from a copy of them, so that the pack scripts (prepack, postpack) run as they do
 * for a release without touching this checkout (its package.json and build/ stay as they are).
 */
import assert from "node:assert/strict";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runProgram } from "./clients.js";

export const REPO_ROOT = new URL("../../../", import.meta.url).pathname;
export const NPM = process.platform === "win32" ? "npm.cmd" : "npm";

/** The paths `npm pack` would ship, relative to the package root, as it lists them (no scripts run). */
export async function packedFiles(): Promise<string[]> {
  const packed = await runProgram(
    NPM,
    ["pack", "--dry-run", "--ignore-scripts", "--json", "--prefix", REPO_ROOT],
    { timeoutMs: 60_000 },
  );
  assert.equal(packed.code, 0, packed.stderr);
  const [manifest] = JSON.parse(packed.stdout) as [{ files: { path: string }[] }];
  return manifest.files.map((file) => file.path);
}

/**
 * Packs the package into `destination` and returns the tarball's path: the shipped files are copied to a
 * staging directory and `npm pack` runs there with its scripts (prepack strips the repository's
 * `prepare`, postpack puts it back), from the build that is already there.
 */
export async function packTarball(destination: string): Promise<string> {
  const stage = await mkdtemp(join(tmpdir(), "mailgate-stage-"));
  try {
    for (const file of [...(await packedFiles()), "package.json"]) {
      await cp(join(REPO_ROOT, file), join(stage, file), { recursive: true });
    }
    const packed = await runProgram(NPM, ["pack", stage, "--json", "--pack-destination", destination], {
      timeoutMs: 60_000,
    });
    assert.equal(packed.code, 0, packed.stderr);
    // The JSON follows what the pack scripts printed.
    const [{ filename }] = JSON.parse(packed.stdout.slice(packed.stdout.search(/^\[/m))) as [
      { filename: string },
    ];
    return join(destination, filename);
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
