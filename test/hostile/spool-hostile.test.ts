/**
 * The spool directory under attack (attack round on --spool): what a crash or another hand leaves in it.
 * What held is asserted, and the holes it found (stale locks, symlinks) stay closed.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { HttpSink } from "../../src/index.js";
import { waitFor } from "../helpers/clients.js";
import { SECRET } from "../sinks/http-helpers.js";
import { filesIn, spoolFixture, startEndpoint } from "../sinks/spool-helpers.js";

const LOCK_FILE = "mailgate-spool.lock";

/** Field 22 of /proc/PID/stat: the process's start time in clock ticks since boot. */
async function startTimeOf(pid: number): Promise<string> {
  const text = await readFile(`/proc/${pid}/stat`, "utf8");
  return text.slice(text.lastIndexOf(")") + 2).split(" ")[19] ?? "";
}
const FAST_RETRY = { retryDelay: { min: 20, max: 100 }, maxRefusals: 2 };

function sinkTo(url: string): HttpSink {
  return new HttpSink({ url, secret: SECRET, requestTimeout: 400, maxSockets: 4 });
}

/** A file in the spool's own format (Return-Path, X-Envelope-To, X-Mailgate-Spool, the message). */
function spooledText(id: string, body: string): string {
  return (
    "Return-Path: <a@example.org>\r\nX-Envelope-To: <b@example.com>\r\n" +
    `X-Mailgate-Spool: {"id":"${id}","session":null}\r\nSubject: planted\r\n\r\n${body}\r\n`
  );
}

test("a lock left by a killed process whose pid this process has now (a container's fixed pid) is taken over", async (t) => {
  const endpoint = await startEndpoint(t);
  const fixture = await spoolFixture(t);
  const first = await fixture.open(sinkTo(endpoint.url));
  await first.close();
  await writeFile(join(fixture.directory, LOCK_FILE), `${process.pid}\n`);
  const second = await fixture.open(sinkTo(endpoint.url));
  await second.close();
});

test("a lock whose pid now belongs to another process (started at another time) is taken over", async (t) => {
  const endpoint = await startEndpoint(t);
  const fixture = await spoolFixture(t);
  const first = await fixture.open(sinkTo(endpoint.url));
  await first.close();
  // The dead owner's pid, now another process's: the lock records the start time its owner had.
  const stranger = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"], { stdio: "ignore" });
  t.after(() => stranger.kill());
  await delay(50);
  const started = await startTimeOf(stranger.pid as number);
  assert.notEqual(started, "", "/proc gives the start time");
  await writeFile(join(fixture.directory, LOCK_FILE), `${stranger.pid} ${Number(started) - 1}\n`);
  const second = await fixture.open(sinkTo(endpoint.url));
  await second.close();

  // The same pid with its own start time is the owner: the spool stays its.
  await writeFile(join(fixture.directory, LOCK_FILE), `${stranger.pid} ${started}\n`);
  await assert.rejects(fixture.open(sinkTo(endpoint.url)), {
    message: new RegExp(`process ${stranger.pid} uses it`),
  });
});

test("an empty lock (its process died before writing its pid) is taken over once it is old", async (t) => {
  const endpoint = await startEndpoint(t);
  const fixture = await spoolFixture(t);
  const lock = join(fixture.directory, LOCK_FILE);
  await writeFile(lock, "");
  const longAgo = new Date(Date.now() - 60_000);
  await utimes(lock, longAgo, longAgo);
  const spool = await fixture.open(sinkTo(endpoint.url));
  await spool.close();
});

test("two processes taking over one stale lock: exactly one gets the spool", async (t) => {
  const fixture = await spoolFixture(t);
  await writeFile(join(fixture.directory, LOCK_FILE), "999999999 1\n");
  const script = `
    import { SinkSpool, HttpSink } from ${JSON.stringify(new URL("../../src/index.js", import.meta.url).href)};
    const sink = new HttpSink({ url: "http://127.0.0.1:9/", secret: "x".repeat(32), requestTimeout: 200 });
    try {
      const spool = await SinkSpool.open(${JSON.stringify(fixture.directory)}, sink);
      process.stdout.write("opened");
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await spool.close();
    } catch (error) {
      process.stdout.write("refused: " + error.message);
    }
  `;
  const outcomes = await Promise.all(
    Array.from({ length: 6 }, async () => {
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      let out = "";
      child.stdout.on("data", (chunk) => {
        out += chunk;
      });
      await new Promise((resolve) => child.on("exit", resolve));
      return out;
    }),
  );
  assert.equal(outcomes.filter((outcome) => outcome === "opened").length, 1, outcomes.join("\n"));
  for (const outcome of outcomes.filter((o) => o !== "opened")) assert.match(outcome, /^refused: .* uses it/);
});

test("a symlink planted in new/ is not followed out of the spool: what it points to is not forwarded", async (t) => {
  const endpoint = await startEndpoint(t);
  const fixture = await spoolFixture(t);
  const outside = await mkdtemp(join(tmpdir(), "mailgate-outside-"));
  t.after(() => rm(outside, { recursive: true, force: true }));
  const target = join(outside, "secret.eml");
  await writeFile(target, spooledText("OUTSIDE", "read through a symlink"));
  const first = await fixture.open(sinkTo(endpoint.url), FAST_RETRY);
  await first.close();
  await symlink(target, join(fixture.directory, "new", "1700000000.M1P1Q1.link"));
  const second = await fixture.open(sinkTo(endpoint.url), FAST_RETRY);
  await waitFor(() => second.depth === 0, "the spool to be empty");
  assert.deepEqual(
    endpoint.accepted.map((message) => message.id),
    [],
  );
});

test("files planted in new/ that are not spooled messages go to refused/, and the forwarder goes on", async (t) => {
  const endpoint = await startEndpoint(t);
  const fixture = await spoolFixture(t);
  const first = await fixture.open(sinkTo(endpoint.url), FAST_RETRY);
  await first.close();
  const planted: [string, string][] = [
    ["1700000000.M1P1Q1.garbage", "garbage\r\n"],
    ["weird\nname;$(id)", "Return-Path: <a@example.org>\r\n\r\nno spool line\r\n"],
    ["1700000000.M1P1Q2.badjson", spooledText("x", "y").replace('{"id"', '{"id":}')],
    ["1700000000.M1P1Q3.crlfid", spooledText("ID\\r\\nX-Injected: yes", "body")],
    ["1700000000.M1P1Q4.good", spooledText("GOOD", "a real one")],
  ];
  for (const [name, text] of planted) await writeFile(join(fixture.directory, "new", name), text);
  const second = await fixture.open(sinkTo(endpoint.url), FAST_RETRY);
  await waitFor(() => second.depth === 0, "the spool to be empty", 10_000);
  assert.deepEqual(
    endpoint.accepted.map((message) => message.id),
    ["GOOD"],
  );
  assert.deepEqual((await filesIn(fixture.directory, "new")).sort(), []);
  assert.equal((await filesIn(join(fixture.directory, "refused"), "new")).length, 4);
});
