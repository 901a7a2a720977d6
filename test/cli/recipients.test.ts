/**
 * The recipient policy of `mailgate serve` (--accept-domains, --recipients FILE re-read on SIGHUP): who
 * is accepted at RCPT, and 550 5.1.1 for everyone else.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { parseAcceptDomains, RecipientPolicy } from "../../src/cli/recipient-policy.js";
import { SmtpError } from "../../src/index.js";
import { waitFor } from "../helpers/clients.js";
import { MAIN, startServe } from "../helpers/serve-process.js";

const run = promisify(execFile);

function refusal(policy: RecipientPolicy, address: string): string | null {
  try {
    policy.check(address);
    return null;
  } catch (error) {
    assert.ok(error instanceof SmtpError);
    return error.render();
  }
}

/** The RCPT reply codes that Python's smtplib gets for each address, in one session. */
async function rcptCodes(port: number, addresses: string[]): Promise<number[]> {
  const script = [
    "import smtplib, sys, json",
    "s = smtplib.SMTP('127.0.0.1', int(sys.argv[1])); s.ehlo(); s.mail('a@x.test', ['SMTPUTF8'])",
    "print(json.dumps([s.rcpt(r)[0] for r in sys.argv[2:]])); s.quit()",
  ].join("\n");
  const { stdout } = await run("python3", ["-c", script, String(port), ...addresses]);
  return JSON.parse(stdout) as number[];
}

describe("recipient policy", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "mailgate-recipients-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test("domains and addresses match without regard to case, IDN domains in either form", async () => {
    const file = join(dir, "list");
    await writeFile(file, "# staff\nAlice@Example.ORG\n@bücher.example   # the whole domain\n\n");
    const policy = await RecipientPolicy.open(parseAcceptDomains("example.com, xn--caf-dma.example"), file);
    assert.ok(policy);
    for (const accepted of [
      "anyone@example.com",
      "x@EXAMPLE.COM",
      "y@café.example",
      "alice@example.org",
      "ALICE@example.org",
      "z@xn--bcher-kva.example",
      "z@Bücher.example",
      '"alice"@example.org',
      '"Alice"@Example.org',
    ]) {
      assert.equal(refusal(policy, accepted), null, accepted);
    }
    for (const refused of [
      "bob@example.org",
      "a@sub.example.com",
      "a@example.net",
      "postmaster",
      "a@",
      '"alice@example.org"@evil.example',
      '"al ice"@example.org',
    ]) {
      assert.equal(
        refusal(policy, refused),
        "550 5.1.1 Recipient address rejected: user unknown\r\n",
        refused,
      );
    }
  });

  test("no flag, no policy; a bad entry or domain is named", async () => {
    assert.equal(await RecipientPolicy.open([], undefined), undefined);
    const file = join(dir, "bad");
    await writeFile(file, "ok@example.com\nnot an address\n");
    await assert.rejects(
      RecipientPolicy.open([], file),
      /--recipients .*bad line 2: "not an address" is not an address or @domain\./,
    );
    assert.throws(() => parseAcceptDomains(" , "), /--accept-domains: it needs at least one domain/);
    assert.throws(() => parseAcceptDomains("a..b"), /--accept-domains: "a\.\.b" is not a domain/);
  });

  test("mailgate serve: 550 5.1.1 at RCPT for others; SIGHUP re-reads the file, a broken one keeps the old", async () => {
    const file = join(dir, "served");
    await writeFile(file, "alice@example.org\n");
    const served = await startServe(dir, [
      "--accept-domains",
      "example.com",
      "--recipients",
      file,
      "--maildir",
      join(dir, "mail"),
    ]);
    try {
      assert.deepEqual(
        await rcptCodes(served.port, ["a@example.com", "alice@example.org", "bob@example.org"]),
        [250, 250, 550],
      );

      await writeFile(file, "bob@example.org\n");
      served.child.kill("SIGHUP");
      await waitFor(() => served.output().includes("Recipients reloaded"), "the reload");
      assert.deepEqual(await rcptCodes(served.port, ["alice@example.org", "bob@example.org"]), [550, 250]);

      await writeFile(file, "@\n");
      served.child.kill("SIGHUP");
      await waitFor(() => served.output().includes("The previous recipients stay."), "the failed reload");
      assert.deepEqual(await rcptCodes(served.port, ["bob@example.org"]), [250]);
    } finally {
      served.child.kill("SIGKILL");
    }
  });

  test("a recipients file that cannot be read at start is one sentence and exit 1", async () => {
    const result = await run(process.execPath, [
      MAIN,
      "serve",
      "--ports",
      "0",
      "--recipients",
      join(dir, "absent"),
      "--maildir",
      join(dir, "m2"),
    ]).catch((error: { code: number; stderr: string }) => error);
    assert.equal((result as { code: number }).code, 1);
    assert.match(
      (result as { stderr: string }).stderr,
      /^mailgate: Cannot read --recipients .*absent: ENOENT\.\n$/,
    );
  });
});
