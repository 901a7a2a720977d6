/**
 * NatsSink's secrets: a private nats-server that requires TLS (a certificate of the test's own CA) and a
 * token. The sink connects with both, a wrong token or an unknown CA fails start() with one sentence, and
 * no log line or error ever holds the token.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { type Logger, NatsSink } from "../../src/index.js";
import { generateSelfSignedCertificate } from "../../src/tls/certificates.js";
import { startPrivateNats } from "./nats-broker.js";

const TOKEN = "t0ken-that-must-never-be-logged";

async function* chunks(...buffers: Buffer[]): AsyncGenerator<Buffer> {
  yield* buffers;
}

test("TLS with a private CA and a token: connects, delivers, and never shows the token", async (t) => {
  const directory = await mkdtemp(join(tmpdir(), "mailgate-nats-tls-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  const { cert, key } = await generateSelfSignedCertificate({
    cn: "localhost",
    san: ["127.0.0.1"],
    keyType: "ec",
  });
  await writeFile(join(directory, "cert.pem"), cert);
  await writeFile(join(directory, "key.pem"), key);
  const server = await startPrivateNats(
    t,
    `tls { cert_file: "${join(directory, "cert.pem")}", key_file: "${join(directory, "key.pem")}" }\nauthorization { token: "${TOKEN}" }`,
  );
  if (!server) return;
  const lines: string[] = [];
  const record = (line: string) => {
    lines.push(line);
  };
  const logger: Logger = { debug: record, info: record, warn: record, error: record };
  const tlsUrl = `tls://127.0.0.1:${server.port}`;

  const sink = await NatsSink.open({
    servers: tlsUrl,
    token: TOKEN,
    tls: { ca: cert },
    subject: "secret.{domain}",
    bucket: null,
    declare: { stream: "SECRET" },
    logger,
  });
  const receipt = await sink.deliver(
    { from: "a@example.org", to: ["b@example.com"], id: "tls-1" },
    chunks(Buffer.from("over TLS\r\n")),
  );
  assert.equal(receipt.location, "nats:SECRET/1");
  await sink.close();

  const failures = [
    { servers: `tls://wrong-${TOKEN}@127.0.0.1:${server.port}`, tls: { ca: cert } }, // a token in the URL
    { servers: tlsUrl, token: TOKEN }, // the server's CA unknown
  ];
  for (const options of failures) {
    const failing = new NatsSink({ ...options, bucket: null, connectTimeout: 3000, logger });
    await assert.rejects(failing.start(), (error: Error) => {
      assert.match(
        error.message,
        new RegExp(`^Cannot start the NATS sink at 127\\.0\\.0\\.1:${server.port}: `),
      );
      assert.equal(error.message.includes(TOKEN), false, "the token is not in the error");
      return true;
    });
    await failing.close();
  }
  assert.ok(lines.length > 0);
  assert.deepEqual(
    lines.filter((line) => line.includes(TOKEN)),
    [],
    "no log line holds the token",
  );
});
