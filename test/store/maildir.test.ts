import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fsyncDirectory } from "../../src/store/group-commit.js";
import { MaildirStore, parseEnvelopeHeaders } from "../../src/store/maildir.js";

/** Runs `body` with a fresh directory under the OS temp dir, removed afterwards. */
async function withTempDir(body: (directory: string) => Promise<void>): Promise<void> {
  const directory = await mkdtemp(join(tmpdir(), "mailgate-maildir-"));
  try {
    await body(directory);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

async function* chunks(...parts: (string | Buffer)[]): AsyncGenerator<Buffer> {
  for (const part of parts) yield Buffer.from(part);
}

const envelope = { from: "sender@example.org", to: ["rcpt@example.com"] };

test("a message is stored and read back byte-exact with its envelope", async () => {
  await withTempDir(async (directory) => {
    const maildir = join(directory, "Maildir");
    const store = await MaildirStore.open(maildir);
    const binary = Buffer.from(Array.from({ length: 256 }, (_, byte) => byte));
    const message = Buffer.concat([Buffer.from("Subject: caf\u00e9\r\n\r\n"), binary, Buffer.from("\r\n")]);
    const sent = {
      from: "",
      to: ["a@example.com", "b@example.org", "\u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a"],
    };

    const receipt = await store.deliver(sent, chunks(message.subarray(0, 7), message.subarray(7)));

    const names = await readdir(join(maildir, "new"));
    assert.deepEqual(names, [`${receipt.id},S=${receipt.size}`]);
    assert.equal(receipt.location, join(maildir, "new", names[0]));
    assert.match(receipt.id, /^\d+\.M\d+P\d+Q\d+R[0-9a-f]+\..+$/);
    const stored = await readFile(receipt.location);
    assert.equal(stored.length, receipt.size);
    const { envelope: parsed, bodyOffset } = parseEnvelopeHeaders(stored);
    assert.deepEqual(parsed, sent);
    assert.deepEqual(stored.subarray(bodyOffset), message);
    assert.equal(
      stored.subarray(0, bodyOffset).toString("utf8"),
      "Return-Path: <>\r\nX-Envelope-To: <a@example.com>\r\nX-Envelope-To: <b@example.org>\r\n" +
        "X-Envelope-To: <\u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a>\r\n",
    );
    assert.deepEqual(await readdir(join(maildir, "tmp")), []);
    assert.deepEqual(await readdir(join(maildir, "cur")), []);
    assert.equal((await stat(maildir)).mode & 0o777, 0o700);
  });
});

test("trace headers end at the first line that is not one, even if the message repeats them", () => {
  const file = Buffer.from(
    'Return-Path: <"a>b"@example.org>\r\nX-Envelope-To: <c@example.com>\r\nReturn-Path: <x@y>\r\n\r\nbody',
  );
  const { envelope: parsed, bodyOffset } = parseEnvelopeHeaders(file);
  assert.deepEqual(parsed, { from: '"a>b"@example.org', to: ["c@example.com"] });
  assert.equal(file.subarray(bodyOffset).toString(), "Return-Path: <x@y>\r\n\r\nbody");
  assert.throws(
    () => parseEnvelopeHeaders(Buffer.from("Subject: hi\r\n\r\n")),
    /does not start with Return-Path/,
  );
});

test("the host name in file names has / and : escaped", async () => {
  await withTempDir(async (directory) => {
    const store = await MaildirStore.open(directory, { hostname: "mx/1:25" });
    const receipt = await store.deliver(envelope, chunks("\r\n"));
    assert.ok(receipt.id.endsWith(".mx\\0571\\07225"), receipt.id);
  });
});

test("200 concurrent deliveries are all stored once, under unique names, sharing directory fsyncs", async () => {
  await withTempDir(async (directory) => {
    let fsyncs = 0;
    const store = await MaildirStore.open(directory, {
      fsyncDirectory: (path) => {
        fsyncs += 1;
        return fsyncDirectory(path);
      },
    });
    const receipts = await Promise.all(
      Array.from({ length: 200 }, (_, n) =>
        store.deliver(envelope, chunks(`Subject: ${n}\r\n`, "\r\nhi\r\n")),
      ),
    );
    const names = await readdir(join(directory, "new"));
    assert.equal(names.length, 200);
    assert.equal(new Set(receipts.map((receipt) => receipt.id)).size, 200);
    const subjects = await Promise.all(
      names.map(async (name) => {
        const stored = await readFile(join(directory, "new", name));
        return stored.subarray(parseEnvelopeHeaders(stored).bodyOffset).toString().split("\r\n")[0];
      }),
    );
    assert.deepEqual(subjects.sort(), Array.from({ length: 200 }, (_, n) => `Subject: ${n}`).sort());
    assert.deepEqual(await readdir(join(directory, "tmp")), []);
    assert.ok(fsyncs < 50, `${fsyncs} directory fsyncs for 200 deliveries`);
  });
});

test("a message that errors midway leaves nothing behind and rejects with its error", async () => {
  await withTempDir(async (directory) => {
    const store = await MaildirStore.open(directory);
    const aborted = new Error("552 message too big");
    async function* message(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(100 * 1024, "a"); // more than one write batch, so the tmp file has content
      throw aborted;
    }
    await assert.rejects(store.deliver(envelope, message()), aborted);
    assert.deepEqual(await readdir(join(directory, "tmp")), []);
    assert.deepEqual(await readdir(join(directory, "new")), []);
  });
});

test("addresses with CR, LF or NUL, or no recipients, are refused before anything is written", async () => {
  await withTempDir(async (directory) => {
    const store = await MaildirStore.open(directory);
    for (const bad of [
      { from: "a@b\r\nX-Evil: 1", to: ["c@d"] },
      { from: "a@b", to: ["c@d", "e\n@f"] },
      { from: "a\0@b", to: ["c@d"] },
      { from: "a@b", to: [] },
    ]) {
      await assert.rejects(store.deliver(bad, chunks("\r\n")), TypeError);
    }
    assert.deepEqual(await readdir(join(directory, "tmp")), []);
    assert.deepEqual(await readdir(join(directory, "new")), []);
  });
});

test("a failure to create the file rejects, and delivery works again once the fault is fixed", async () => {
  await withTempDir(async (directory) => {
    const store = await MaildirStore.open(directory);
    await rm(join(directory, "tmp"), { recursive: true });
    await writeFile(join(directory, "tmp"), "not a directory");
    await assert.rejects(store.deliver(envelope, chunks("\r\nhi\r\n")), { code: "ENOTDIR" });
    assert.deepEqual(await readdir(join(directory, "new")), []);

    await rm(join(directory, "tmp"));
    await mkdir(join(directory, "tmp"));
    await store.deliver(envelope, chunks("\r\nhi\r\n"));
    assert.equal((await readdir(join(directory, "new"))).length, 1);
  });
});

test("a failure after writing removes the tmp file, and delivery works again once the fault is fixed", async () => {
  await withTempDir(async (directory) => {
    const store = await MaildirStore.open(directory);
    await rm(join(directory, "new"), { recursive: true });
    await writeFile(join(directory, "new"), "not a directory");
    await assert.rejects(store.deliver(envelope, chunks("\r\nhi\r\n")), { code: "ENOTDIR" });
    assert.deepEqual(await readdir(join(directory, "tmp")), []);

    await rm(join(directory, "new"));
    await mkdir(join(directory, "new"));
    await store.deliver(envelope, chunks("\r\nhi\r\n"));
    assert.equal((await readdir(join(directory, "new"))).length, 1);
    assert.deepEqual(await readdir(join(directory, "tmp")), []);
  });
});

test("a failed fsync of new/ rejects and takes the message back out of new/", async () => {
  await withTempDir(async (directory) => {
    const failure = new Error("EIO");
    const store = await MaildirStore.open(directory, { fsyncDirectory: () => Promise.reject(failure) });
    await assert.rejects(store.deliver(envelope, chunks("\r\nhi\r\n")), failure);
    assert.deepEqual(await readdir(join(directory, "new")), []);
    assert.deepEqual(await readdir(join(directory, "tmp")), []);
  });
});

test("open explains in one sentence why it cannot use a directory", async () => {
  await withTempDir(async (directory) => {
    const file = join(directory, "file");
    await writeFile(file, "");
    await assert.rejects(MaildirStore.open(join(file, "Maildir")), (error: Error) => {
      assert.match(error.message, /^Cannot use Maildir ".*file\/Maildir": .*ENOTDIR.*\.$/);
      return true;
    });
  });
});

test("open refuses a Maildir it could not deliver into, at once and in one sentence", async () => {
  await withTempDir(async (directory) => {
    // tmp/ that is a file: every delivery would fail with 451.
    await mkdir(join(directory, "broken"));
    await writeFile(join(directory, "broken", "tmp"), "");
    await assert.rejects(MaildirStore.open(join(directory, "broken")), (error: Error) => {
      assert.match(
        error.message,
        /^Cannot use Maildir ".*broken": .*broken\/tmp exists and is not a directory\.$/,
      );
      return true;
    });
    // A read-only directory (not for root, whom permissions do not stop).
    if (process.getuid?.() !== 0) {
      const readOnly = join(directory, "read-only");
      await MaildirStore.open(readOnly);
      await chmod(join(readOnly, "tmp"), 0o500);
      await assert.rejects(MaildirStore.open(readOnly), /^Error: Cannot use Maildir ".*read-only": EACCES/);
    }
  });
  // Where mkdir fails with ENOENT under an existing parent, node's recursive mkdir never returns.
  await assert.rejects(
    MaildirStore.open("/proc/mailgate-nonexistent/Maildir"),
    /^Error: Cannot use Maildir "\/proc\//,
  );
});

test("a 200 MB message is streamed to disk in constant memory", async (t) => {
  await withTempDir(async (directory) => {
    const store = await MaildirStore.open(directory);
    const chunkSize = 64 * 1024;
    async function* message(count: number): AsyncGenerator<Buffer> {
      for (let n = 0; n < count; n++) yield Buffer.alloc(chunkSize, n % 256);
    }
    // A first, smaller message sets up the heap and allocator, so the measure below is the delivery's own.
    await store.deliver(envelope, message(160));
    const count = 3200; // 200 MiB
    const rssBefore = process.memoryUsage().rss;
    const receipt = await store.deliver(envelope, message(count));
    const growth = process.memoryUsage().rss - rssBefore;
    t.diagnostic(`RSS grew by ${Math.round(growth / 1024 / 1024)} MB`);
    assert.ok(growth < 50 * 1024 * 1024, `RSS grew by ${Math.round(growth / 1024 / 1024)} MB`);

    const headerSize = Buffer.byteLength(
      "Return-Path: <sender@example.org>\r\nX-Envelope-To: <rcpt@example.com>\r\n",
    );
    assert.equal(receipt.size, headerSize + count * chunkSize);
    assert.equal((await stat(receipt.location)).size, receipt.size);
    // Spot-check that the chunks landed in order.
    const file = await open(receipt.location, "r");
    try {
      for (const n of [0, 1234, count - 1]) {
        const { buffer } = await file.read(Buffer.alloc(chunkSize), 0, chunkSize, headerSize + n * chunkSize);
        assert.deepEqual(buffer, Buffer.alloc(chunkSize, n % 256), `chunk ${n}`);
      }
    } finally {
      await file.close();
    }
  });
});
