import assert from "node:assert/strict";
import { test } from "node:test";
import { VERSION } from "../src/index.js";

test("the package exports its version", () => {
  assert.equal(typeof VERSION, "string");
});
