/** natsSinkOptionsFromUrl: a nats:// URL and its query parameters become NatsSink options. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { NatsSink, natsSinkOptionsFromUrl } from "../../src/index.js";

test("a URL's query parameters fill the options, credentials stay in servers and out of logs", () => {
  const options = natsSinkOptionsFromUrl(
    "tls://mailgate:s%40cret@nats.example:4443?stream=MAIL&subject=in.{domain}&subjects=in.>,more.>&duplicateWindow=120000&maxBytes=1000000&bucket=bodies&bucketTtl=86400000&publishTimeout=5000&window=64&creds=/run/nats.creds&tlsCa=/etc/ca.pem&name=mx1",
  );
  assert.deepEqual(options, {
    servers: "tls://mailgate:s%40cret@nats.example:4443",
    subject: "in.{domain}",
    bucket: "bodies",
    name: "mx1",
    credsFile: "/run/nats.creds",
    publishTimeout: 5000,
    window: 64,
    tls: { caFile: "/etc/ca.pem" },
    declare: {
      stream: "MAIL",
      subjects: ["in.>", "more.>"],
      duplicateWindow: 120_000,
      maxBytes: 1_000_000,
      bucketTtl: 86_400_000,
    },
  });
  assert.deepEqual(natsSinkOptionsFromUrl("nats://127.0.0.1:4222?bucket=none"), {
    servers: "nats://127.0.0.1:4222",
    bucket: null,
  });
  const { credsFile: _, ...withPassword } = options;
  const sink = new NatsSink(withPassword);
  assert.equal(sink.redactedServers, "nats.example:4443");
});

test("a bad URL or parameter is one sentence naming it, never repeating the URL", () => {
  assert.throws(
    () => natsSinkOptionsFromUrl("nats://u:pw@h?colour=blue"),
    /unknown parameter colour; known: /,
  );
  assert.throws(() => natsSinkOptionsFromUrl("nats://h?window=ten"), /window=ten is not an integer/);
  assert.throws(() => natsSinkOptionsFromUrl("nats://h?maxMsgs=5"), /need stream=NAME/);
  assert.throws(() => natsSinkOptionsFromUrl("amqp://h"), /use nats:\/\/ or tls:\/\//);
  assert.throws(
    () => natsSinkOptionsFromUrl("nats://u:pw@[bad"),
    (error: Error) => !error.message.includes("pw") && /Invalid NATS URL/.test(error.message),
  );
});
