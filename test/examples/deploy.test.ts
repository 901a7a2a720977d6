/**
 * The deployment recipes in examples/deploy/: the systemd unit passes `systemd-analyze verify` (with its
 * ExecStart pointed at an executable that exists here), and the container file runs the command the
 * docs/operations.md documents. No container engine runs here and systemd is not PID 1: that is as far as they go.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { needProgram } from "../helpers/programs.js";

const run = promisify(execFile);
const DEPLOY = new URL("../../../examples/deploy/", import.meta.url).pathname;

test("the systemd unit passes systemd-analyze verify", async (t) => {
  if (!needProgram(t, "systemd-analyze", "systemd")) return;
  const unit = await readFile(join(DEPLOY, "mailgate.service"), "utf8");
  assert.match(
    unit,
    /^ExecStart=\/usr\/local\/bin\/mailgate serve --config \/etc\/mailgate\/mailgate\.toml$/m,
  );
  for (const hardening of [
    "ProtectSystem=strict",
    "NoNewPrivileges=true",
    "AmbientCapabilities=CAP_NET_BIND_SERVICE",
  ]) {
    assert.ok(unit.includes(`\n${hardening}\n`), hardening);
  }
  const dir = await mkdtemp(join(tmpdir(), "mailgate-unit-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // verify checks that the command exists: npm's global bin is not installed here.
  const file = join(dir, "mailgate.service");
  await writeFile(file, unit.replace("/usr/local/bin/mailgate", process.execPath));
  const { stderr } = await run("systemd-analyze", ["verify", file]);
  assert.equal(stderr.trim(), "", "no warning");
});

test("the container file runs mailgate serve --config as a user, on 2525", async () => {
  const file = await readFile(join(DEPLOY, "Containerfile"), "utf8");
  assert.match(file, /^USER node$/m);
  assert.match(file, /^EXPOSE 2525$/m);
  assert.match(file, /^CMD \["serve", "--config", "\/etc\/mailgate\/mailgate\.toml"\]$/m);
});
