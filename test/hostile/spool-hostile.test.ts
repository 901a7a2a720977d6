/**
 * The spool directory under attack (attack round on --spool): what a crash or another hand leaves in it.
 * What held is asserted; the holes found are todo tests whose fix belongs to src/sinks/ (see each todo).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { HttpSink } from "../../src/index.js";
import { waitFor } from "../helpers/clients.js";
import { SECRET } from "../sinks/http-helpers.js";
import { filesIn, spoolFixture, startEndpoint } from "../sinks/spool-helpers.js";

const LOCK_FILE = "mailgate-spool.lock";
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

test("a lock left by a killed process whose pid this process has now (a container's fixed pid) is taken over", {
  todo: "src/sinks/spool-lock.ts: `owner === process.pid` is read as 'this process has it open already', but after kill -9 or an OOM kill the restarted process often has the same pid (PID 1 in a container), so the spool never opens again. Fix: keep the paths this process holds in a module-level Set; a lock naming our pid that is not in it is stale and taken over.",
}, async (t) => {
  const endpoint = await startEndpoint(t);
  const fixture = await spoolFixture(t);
  const first = await fixture.open(sinkTo(endpoint.url));
  await first.close();
  await writeFile(join(fixture.directory, LOCK_FILE), `${process.pid}\n`);
  const second = await fixture.open(sinkTo(endpoint.url));
  await second.close();
});

test("a lock whose pid now belongs to a process started after the lock was written is taken over", {
  todo: "src/sinks/spool-lock.ts: after a crash and a reboot the lock's pid is often some other live process, and isAlive() keeps the spool closed for good. Fix: write `pid starttime` (field 22 of /proc/PID/stat) in the lock and count the owner alive only if /proc/PID/stat still shows that start time (where /proc exists; elsewhere fall back to the pid alone).",
}, async (t) => {
  const endpoint = await startEndpoint(t);
  const fixture = await spoolFixture(t);
  const first = await fixture.open(sinkTo(endpoint.url));
  await first.close();
  // The dead owner's pid, reused by a process that started after the lock was written.
  const stranger = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"], { stdio: "ignore" });
  t.after(() => stranger.kill());
  await delay(50);
  await writeFile(join(fixture.directory, LOCK_FILE), `${stranger.pid}\n`);
  const second = await fixture.open(sinkTo(endpoint.url));
  await second.close();
});

test("a symlink planted in new/ is not followed out of the spool: what it points to is not forwarded", {
  todo: "src/sinks/spool.ts listSpooled() uses stat() and src/sinks/spool-file.ts readSpooledMessage() opens with open(path, 'r'): both follow symlinks, so a link in new/ to a file elsewhere in the spool's format is forwarded to the broker (then only the link is removed). Fix: lstat() in listSpooled (and skip or refuse what is not a regular file), and open with fs.constants.O_RDONLY | O_NOFOLLOW in readSpooledMessage so that a link swapped in later fails with ELOOP and goes to refused/.",
}, async (t) => {
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
