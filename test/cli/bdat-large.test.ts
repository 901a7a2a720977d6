/**
 * A 100 MB message sent with BDAT in 1 MB chunks to `mailgate serve` arrives byte-exact in the Maildir.
 * The server's peak RSS (VmHWM of its process) is reported; memory is measured by benchmarks, so the test
 * only guards against the message being held in memory (which would add 100 MB or more).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseEnvelopeHeaders } from "../../src/store/maildir.js";

const MAIN = new URL("../../src/cli/main.js", import.meta.url).pathname;
const CHUNK = 1024 * 1024;
const CHUNKS = 100;

test("100 MB in 1 MB BDAT chunks: byte-exact in the Maildir, streamed (never held in memory)", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "mailgate-bdat-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const child = spawn(process.execPath, [MAIN, "serve", "--ports", "0", "--max-message-size", "0"], {
    cwd: dir,
  });
  t.after(() => child.kill("SIGKILL"));
  let output = "";
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on("data", (d) => {
      output += d;
      const match = /serving SMTP on 127\.0\.0\.1:(\d+)/.exec(output);
      if (match) resolve(Number(match[1]));
    });
    child.on("exit", () => reject(new Error(output)));
  });

  const socket = connect(port, "127.0.0.1");
  let replies = "";
  socket.on("data", (d) => {
    replies += d;
  });
  const waitFor = async (pattern: RegExp) => {
    while (!pattern.test(replies)) await new Promise((resolve) => setTimeout(resolve, 5));
  };
  await waitFor(/^220 /m);
  socket.write("EHLO big.test\r\n");
  await waitFor(/^250 HELP/m);
  socket.write("MAIL FROM:<a@x.test> BODY=BINARYMIME\r\nRCPT TO:<b@y.test>\r\n");
  await waitFor(/^250 2\.1\.5/m);
  const hash = createHash("sha256");
  const header = Buffer.from("Subject: big\r\n\r\n");
  for (let i = 0; i < CHUNKS; i++) {
    const chunk = Buffer.alloc(CHUNK, i % 251);
    if (i === 0) header.copy(chunk);
    hash.update(chunk);
    const last = i === CHUNKS - 1 ? " LAST" : "";
    if (!socket.write(`BDAT ${CHUNK}${last}\r\n`) || !socket.write(chunk)) {
      await new Promise((resolve) => socket.once("drain", resolve));
    }
  }
  await waitFor(/^250 2\.0\.0 Ok: stored as /m);
  const status = await readFile(`/proc/${child.pid}/status`, "utf8");
  const peakKb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
  socket.end("QUIT\r\n");

  assert.equal((replies.match(/^250 2\.0\.0 Ok: 1048576 octets received/gm) ?? []).length, CHUNKS - 1);
  const [name] = await readdir(join(dir, "mail", "new"));
  const file = await readFile(join(dir, "mail", "new", name as string));
  const body = file.subarray(parseEnvelopeHeaders(file).bodyOffset);
  const received = body.subarray(body.indexOf("Subject: big")); // after our Received header
  assert.equal(received.length, CHUNK * CHUNKS);
  assert.equal(createHash("sha256").update(received).digest("hex"), hash.digest("hex"));
  t.diagnostic(`server peak RSS ${Math.round(peakKb / 1024)} MB`);
  assert.ok(peakKb < 160 * 1024, `peak RSS ${peakKb} kB: is the message buffered?`);
});
