/**
 * The committed fuzz corpus replayed through the fuzz targets, without the fuzzing engine: the seeds and
 * every input that once found a bug (fuzz/corpus/<target>/) must pass each target's invariants.
 */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { describe, test } from "node:test";
import { corpusDirectory, FUZZ_TARGETS, loadTarget } from "../../fuzz/targets/index.js";

for (const target of FUZZ_TARGETS) {
  describe(`fuzz corpus: ${target.name} (${target.subject})`, async () => {
    const files = (await readdir(corpusDirectory(target))).sort();
    const fuzz = await loadTarget(target);

    test("has seeds", () => {
      assert.ok(files.length > 0, `no corpus in ${corpusDirectory(target)}`);
    });

    test("every entry keeps the invariants", { timeout: 20_000 }, async () => {
      for (const file of files) {
        const data = await readFile(`${corpusDirectory(target)}/${file}`);
        try {
          await fuzz(data);
        } catch (error) {
          assert.fail(`${target.name}/${file}: ${error instanceof Error ? error.stack : String(error)}`);
        }
      }
    });
  });
}
