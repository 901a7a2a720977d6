/**
 * `mailgate serve --sink`: the built CLI hands each message to RabbitMQ or to an HTTP endpoint instead of
 * the Maildir, with its secret from a file or the environment; bad sink flags and unreachable sinks are one
 * sentence and an exit status.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import nodemailer from "nodemailer";
import { AMQP_HEADERS, readNatsMailHeaders } from "../../src/index.js";
import { freePort, waitFor } from "../helpers/clients.js";
import { MAIN, startServe } from "../helpers/serve-process.js";
import { TcpProxy } from "../helpers/tcp-proxy.js";
import { brokerOrSkip, cleanUpAfter, drainQueue } from "../sinks/amqp-broker.js";
import { SECRET, startReceiver } from "../sinks/http-helpers.js";
import { NATS_URL, natsOrSkip, readStream, uniqueStream } from "../sinks/nats-broker.js";
import { uniqueName } from "../sinks/sink-server.js";

const run = promisify(execFile);

/** The message as the client sent it, with mailgate's Received header (one folded header) before it. */
function afterReceived(body: Buffer): Buffer {
  const text = body.toString("latin1");
  assert.match(text, /^Received: from /);
  return body.subarray(text.search(/\r\n(?![\t ])/) + 2);
}

async function send(port: number, raw: string, to: string[]): Promise<string> {
  const transport = nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true });
  try {
    const info = await transport.sendMail({ envelope: { from: "alice@example.org", to }, raw });
    return info.response;
  } finally {
    transport.close();
  }
}

/** Runs `mailgate serve ARGS` expecting it to fail at start; resolves with its exit status and stderr. */
async function failedStart(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stderr: string }> {
  const result = await run(process.execPath, [MAIN, "serve", "--ports", "0", ...args], {
    env: { ...process.env, ...env },
    timeout: 20_000,
  }).then(
    () => ({ code: 0, stderr: "" }),
    (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
  );
  return result;
}

const RAW =
  "From: alice@example.org\r\nTo: bob@example.com\r\nSubject: via the sink\r\n\r\nh\u00e9llo\r\n.dot\r\n";

describe("mailgate serve --sink", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "mailgate-serve-sink-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test("amqp: every message is published to RabbitMQ with its envelope, password from a file", async (t) => {
    const broker = await brokerOrSkip(t);
    if (!broker) return;
    const exchange = uniqueName("cli-exchange");
    const queue = uniqueName("cli-queue");
    cleanUpAfter(t, { exchange, queue });
    const secretFile = join(dir, "amqp-password");
    await writeFile(secretFile, "guest\n");
    const served = await startServe(dir, [
      "--sink",
      "amqp://guest@127.0.0.1:5672/",
      "--sink-secret-file",
      secretFile,
      "--sink-exchange",
      exchange,
      "--sink-declare-queue",
      queue,
      "--sink-publish-timeout",
      "5000",
    ]);
    t.after(() => served.child.kill("SIGKILL"));
    assert.match(
      served.output(),
      /into RabbitMQ amqp:\/\/guest:\*\*\*@127\.0\.0\.1:5672\/\S*, exchange "mailgate-test-cli-exchange-/,
    );

    const response = await send(served.port, RAW, ["bob@example.com", "carol@example.net"]);
    assert.match(response, /^250 /);
    const [message, ...others] = await drainQueue(broker.channel, queue);
    assert.ok(message, "the message is in the queue");
    assert.equal(others.length, 0);
    assert.deepEqual(afterReceived(message.content), Buffer.from(RAW, "utf8"));
    assert.equal(message.fields.routingKey, "example.com");
    const headers = message.properties.headers ?? {};
    assert.equal(headers[AMQP_HEADERS.from], "alice@example.org");
    assert.deepEqual(headers[AMQP_HEADERS.to], ["bob@example.com", "carol@example.net"]);
    // The message id is the one in the Received header ("id ..."), so a copy is recognisable downstream.
    const receivedId = /\bid ([0-9A-Z]+)/.exec(message.content.toString("latin1"))?.[1];
    assert.equal(message.properties.messageId, receivedId);

    served.child.kill("SIGTERM");
    assert.equal(await served.exited, 0);
    assert.doesNotMatch(served.output(), /guest:guest|:guest@/, "the password is never printed");
  });

  test("SIZE is the smaller of --max-message-size and the broker's limit", async (t) => {
    const broker = await brokerOrSkip(t);
    if (!broker) return;
    const exchange = uniqueName("cli-size");
    cleanUpAfter(t, { exchange });
    const served = await startServe(
      dir,
      ["--sink", "amqp://guest@127.0.0.1:5672/", "--sink-exchange", exchange, "--max-message-size", "0"],
      { ...process.env, MAILGATE_SINK_SECRET: "guest" },
    );
    t.after(() => served.child.kill("SIGKILL"));
    const { stdout } = await run("python3", [
      "-c",
      "import smtplib,sys; s=smtplib.SMTP('127.0.0.1', int(sys.argv[1])); s.ehlo(); print(s.esmtp_features.get('size')); s.quit()",
      String(served.port),
    ]);
    assert.equal(stdout.trim(), String(128 * 1024 * 1024), "RabbitMQ's 128 MiB, not unlimited");
  });

  test("nats: every message is published to a JetStream stream created from the URL's parameters", async (t) => {
    const nats = await natsOrSkip(t);
    if (!nats) return;
    const { stream, bucket, subject } = uniqueStream(t, "cli");
    const url = `${NATS_URL}?stream=${stream}&subject=${encodeURIComponent(subject)}&bucket=${bucket}`;
    const served = await startServe(dir, ["--sink", url, "--sink-publish-timeout", "5000"]);
    t.after(() => served.child.kill("SIGKILL"));
    assert.match(served.output(), /into NATS JetStream 127\.0\.0\.1:4222, subject "mailgate-test-cli-/);
    assert.match(await send(served.port, RAW, ["bob@example.com", "erin@example.com"]), /^250 /);
    const [message, ...others] = await readStream(nats.jsm, stream);
    assert.ok(message, "the message is in the stream");
    assert.equal(others.length, 0);
    assert.equal(message.subject, subject.replace("{domain}", "example.com"));
    const headers = readNatsMailHeaders((name) => message.header.get(name) || undefined);
    assert.deepEqual(headers.envelope.to, ["bob@example.com", "erin@example.com"]);
    assert.deepEqual(afterReceived(Buffer.from(message.data)), Buffer.from(RAW, "utf8"));
    served.child.kill("SIGTERM");
    assert.equal(await served.exited, 0);
  });

  test("http: every message is POSTed, signed with the secret from the environment", async (t) => {
    const receiver = await startReceiver(t);
    const served = await startServe(dir, ["--sink", receiver.url], {
      ...process.env,
      MAILGATE_SINK_SECRET: SECRET,
    });
    t.after(() => served.child.kill("SIGKILL"));
    assert.match(served.output(), /into HTTP endpoint http:\/\/127\.0\.0\.1:\d+\/inbound/);
    const response = await send(served.port, RAW, ["bob@example.com", "dan@example.com"]);
    assert.match(response, /^250 /);
    await waitFor(() => receiver.envelopes.size === 1, "the endpoint stored the message");
    const [stored] = await receiver.messages();
    assert.ok(stored);
    assert.deepEqual(stored.to, ["bob@example.com", "dan@example.com"]);
    assert.deepEqual(afterReceived(stored.body), Buffer.from(RAW, "utf8"));
    assert.ok(!served.output().includes(SECRET), "the secret is never printed");
  });

  test("a URL with a password on the command line works, with a warning that ps shows it", async (t) => {
    const broker = await brokerOrSkip(t);
    if (!broker) return;
    const exchange = uniqueName("cli-warn");
    cleanUpAfter(t, { exchange });
    const served = await startServe(dir, [
      "--sink",
      "amqp://guest:guest@127.0.0.1:5672/",
      "--sink-exchange",
      exchange,
    ]);
    t.after(() => served.child.kill("SIGKILL"));
    assert.match(
      served.output(),
      /\[WARN\] The --sink URL holds a password, which ps and the shell history show/,
    );
    assert.match(served.output(), /amqp:\/\/guest:\*\*\*@127\.0\.0\.1/);
  });

  test("--spool: a broker unreachable at start is a warning; the spool takes the mail and forwards it", async (t) => {
    const broker = await brokerOrSkip(t);
    if (!broker) return;
    const exchange = uniqueName("cli-spool");
    const queue = `${exchange}-q`;
    cleanUpAfter(t, { exchange, queue });
    // Declared now as the sink declares them: a basic.get on a queue that does not exist yet would close
    // the test's channel.
    await broker.channel.assertExchange(exchange, "topic", { durable: true });
    await broker.channel.assertQueue(queue, { durable: true, arguments: { "x-queue-type": "quorum" } });
    await broker.channel.bindQueue(queue, exchange, "#");
    const proxy = await TcpProxy.start(5672);
    t.after(() => proxy.close());
    proxy.cut();
    const spool = join(dir, "spool");
    const served = await startServe(
      dir,
      [
        ...["--sink", `amqp://guest@127.0.0.1:${proxy.port}/`, "--sink-exchange", exchange],
        ...["--sink-declare-queue", queue, "--sink-publish-timeout", "3000", "--spool", spool],
      ],
      { ...process.env, MAILGATE_SINK_SECRET: "guest" },
    );
    t.after(() => served.child.kill("SIGKILL"));
    assert.match(served.output(), /\[WARN\] Cannot connect to RabbitMQ at .*Retrying in the background/);
    assert.match(served.output(), new RegExp(`into RabbitMQ .*, spooling outages into ${spool}`));
    const response = await send(served.port, RAW, ["bob@example.com"]);
    assert.match(response, /^250 /, "accepted into the spool while the broker is away");
    assert.equal((await readdir(join(spool, "new"))).length, 1);

    proxy.restore();
    const deadline = Date.now() + 20_000;
    let queued = await drainQueue(broker.channel, queue).catch(() => []);
    while (queued.length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      queued = await drainQueue(broker.channel, queue).catch(() => []);
    }
    assert.equal(queued.length, 1, "the spooled message was forwarded");
    assert.deepEqual(afterReceived((queued[0] as { content: Buffer }).content), Buffer.from(RAW, "utf8"));
    while ((await readdir(join(spool, "new"))).length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.deepEqual(await readdir(join(spool, "new")), [], "the spool is empty again");
    served.child.kill("SIGTERM");
    assert.equal(await served.exited, 0);
  });

  test("bad sink flags are one sentence and exit status 2", async () => {
    const cases: [string[], RegExp, NodeJS.ProcessEnv?][] = [
      [["--sink", "not a url"], /Invalid value for --sink: not a URL/],
      [["--sink", "ftp://127.0.0.1/"], /the scheme ftp: is not one mailgate can hand mail to/],
      [
        ["--sink", "nats://127.0.0.1:4222?stream=S&colour=red"],
        /Invalid value for --sink: unknown parameter colour/,
      ],
      [["--sink", "http://127.0.0.1:1/in"], /An http\(s\) sink signs its requests/],
      [["--sink", "http://u:p@127.0.0.1:1/in", "--sink-secret-file", "x"], /cannot hold credentials/],
      [["--sink", "amqp://127.0.0.1/"], /An amqp sink needs --sink-exchange NAME/],
      [
        ["--sink", "amqp://127.0.0.1/", "--sink-exchange", "x"],
        /name the user in it/,
        { MAILGATE_SINK_SECRET: "pw" },
      ],
      [
        ["--sink", "http://127.0.0.1:1/", "--sink-exchange", "x"],
        /--sink-exchange does not apply to a http:\/\/ sink/,
      ],
      [["--sink-exchange", "x"], /--sink-exchange needs --sink URL/],
      [["--spool", "s"], /--spool needs --sink URL/],
      [
        ["--sink", "amqp://127.0.0.1/", "--sink-exchange", "x", "--spool", "s", "--workers", "2"],
        /--spool does not work with --workers yet/,
      ],
      [
        ["--sink", "amqp://127.0.0.1/", "--sink-exchange", "x", "--spool-max-bytes", "5"],
        /--spool-max-bytes needs --spool DIR/,
      ],
      [
        ["--sink", "amqp://127.0.0.1/", "--sink-exchange", "x", "--maildir", "m"],
        /--maildir does not apply with --sink/,
      ],
      [
        ["--sink", "amqp://127.0.0.1/", "--sink-exchange", "x", "--sink-window", "0"],
        /--sink-window: "0"; it accepts a whole number of at least 1/,
      ],
      [
        ["--sink", "amqp://127.0.0.1/", "--sink-exchange", "x", "--sink-publish-timeout", "30000"],
        /--sink-publish-timeout \(30000\) must be lower than --io-cmd-timeout \(30000\)/,
      ],
      [[], /Invalid value for MAILGATE_SINK: not a URL/, { MAILGATE_SINK: "::" }],
    ];
    for (const [args, expected, env] of cases) {
      const { code, stderr } = await failedStart(args, env);
      assert.equal(code, 2, `${args.join(" ")}: ${stderr}`);
      assert.match(stderr.split("\n")[0] ?? "", expected);
    }
  });

  test("an unreachable sink at start is one sentence and exit status 1", async () => {
    const port = await freePort();
    const amqp = await failedStart(["--sink", `amqp://guest@127.0.0.1:${port}/`, "--sink-exchange", "x"], {
      MAILGATE_SINK_SECRET: "s3cret-password",
    });
    assert.equal(amqp.code, 1, amqp.stderr);
    assert.match(
      amqp.stderr,
      new RegExp(`^mailgate: Cannot connect to RabbitMQ at amqp://guest:\\*\\*\\*@127\\.0\\.0\\.1:${port}/`),
    );
    assert.ok(!amqp.stderr.includes("s3cret-password"));
    const http = await failedStart(["--sink", `http://127.0.0.1:${port}/in`], {
      MAILGATE_SINK_SECRET: SECRET,
    });
    assert.equal(http.code, 1, http.stderr);
    assert.match(
      http.stderr,
      new RegExp(
        `^mailgate: Cannot reach the HTTP sink at http://127\\.0\\.0\\.1:${port}/in: .*ECONNREFUSED`,
      ),
    );
    const missing = await failedStart([
      "--sink",
      `http://127.0.0.1:${port}/in`,
      "--sink-secret-file",
      join(dir, "nope"),
    ]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^mailgate: Cannot read --sink-secret-file .*nope: ENOENT\./);
  });
});
