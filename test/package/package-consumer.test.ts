/**
 * A new user's first steps with the packed package (issue 20): a fresh project installs the tarball with
 * no warning it could not act on, and the README's quick start runs in TypeScript (compiled by tsc,
 * strict, with the shipped types checked) and in plain JavaScript; in this checkout, `npx mailgate`
 * works after a build.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { before, test } from "node:test";
import { RawClient, runProgram } from "../helpers/clients.js";
import { NPM, packTarball, REPO_ROOT } from "../helpers/packing.js";

const FIXTURES = join(REPO_ROOT, "test", "fixtures", "consumer");
let consumer = "";
let installOutput = "";

before(async () => {
  consumer = await mkdtemp(join(tmpdir(), "mailgate-consumer-"));
  const tarball = await packTarball(consumer);
  await writeFile(
    join(consumer, "package.json"),
    JSON.stringify({ name: "consumer", private: true, type: "module" }),
  );
  // From npm's cache where it can; the registry for what the cache lacks (amqplib's metadata).
  const installed = await runProgram(
    NPM,
    ["install", "--prefer-offline", "--no-audit", "--no-fund", "--prefix", consumer, tarball],
    { timeoutMs: 120_000 },
  );
  installOutput = `${installed.stdout}${installed.stderr}`;
  assert.equal(installed.code, 0, installOutput);
});

test.after(() => rm(consumer, { recursive: true, force: true }));

test("installing the tarball prints no warning", () => {
  assert.doesNotMatch(installOutput, /warn|error/i, installOutput);
});

/** Runs a quick start, sends it one message over loopback, and returns what it printed for it. */
async function runQuickStart(script: string): Promise<{ from: string; to: string[]; bytes: number }> {
  const child = spawn(process.execPath, [script], { cwd: consumer, stdio: ["ignore", "pipe", "pipe"] });
  const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (text: string) => {
    stderr += text;
  });
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => JSON.parse(((await lines.next()).value as string | undefined) ?? "null");
  try {
    const started = await next();
    assert.ok(started?.port > 0, `the quick start printed its port (stderr: ${stderr})`);
    const client = await RawClient.greeted(started.port);
    await client.command("EHLO client.test");
    await client.command("MAIL FROM:<alice@example.org>");
    assert.match(await client.command("RCPT TO:<blocked@example.com>"), /^550 5\.1\.1 /);
    assert.match(await client.command("RCPT TO:<bob@example.com>"), /^250 /);
    assert.match(await client.command("DATA"), /^354 /);
    assert.match(await client.command("Subject: hi\r\n\r\nhello\r\n."), /^250 /);
    client.close();
    const message = await next();
    child.kill("SIGTERM");
    assert.equal(await exited, 0, stderr);
    return message;
  } finally {
    clearTimeout(killer);
    child.kill("SIGKILL");
  }
}

const EXPECTED = { from: "alice@example.org", to: ["bob@example.com"], bytes: 22 };

test("the quick start compiles with tsc (strict, the package's types checked) and runs", async () => {
  await copyFile(join(FIXTURES, "quick-start.ts"), join(consumer, "quick-start.ts"));
  await writeFile(
    join(consumer, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        skipLibCheck: false,
        types: ["node"],
        typeRoots: [join(REPO_ROOT, "node_modules", "@types")],
      },
      files: ["quick-start.ts"],
    }),
  );
  const tsc = join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc");
  const compiled = await runProgram(process.execPath, [tsc, "-p", join(consumer, "tsconfig.json")], {
    timeoutMs: 60_000,
  });
  assert.equal(compiled.code, 0, compiled.stdout + compiled.stderr);
  assert.deepEqual(await runQuickStart("quick-start.js"), EXPECTED);
});

test("the quick start runs as plain JavaScript", async () => {
  await copyFile(join(FIXTURES, "quick-start.mjs"), join(consumer, "quick-start.mjs"));
  assert.deepEqual(await runQuickStart("quick-start.mjs"), EXPECTED);
});

test("the installed package's mailgate command answers --version", async () => {
  const result = await runProgram(join(consumer, "node_modules", ".bin", "mailgate"), ["--version"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^\d+\.\d+\.\d+\n$/);
});

test("the checkout's mailgate command runs after npm run build, as npx runs it (the file itself)", async () => {
  // Not through `npm exec` here: on a cache miss npm installs this directory into its npx cache, which
  // runs the prepare script (npm run build) in this checkout and deletes build/ under the running suite.
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as {
    bin: { mailgate: string };
  };
  const result = await runProgram(join(REPO_ROOT, pkg.bin.mailgate), ["--version"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^\d+\.\d+\.\d+\n$/);
});
