/**
 * What `mailgate serve` tells the operator when its store does not take a message: a sink's temporary
 * failure or refusal is a WARN line at the default level (it used to show only at debug), bounded as
 * floods of refusals are (one line, then a summary per interval).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createStoringServer } from "../../src/cli/serve.js";
import { HttpSink } from "../../src/sinks/http.js";
import { RawClient } from "../helpers/clients.js";
import { startReceiver } from "../sinks/http-helpers.js";

test("mailgate serve: a sink's refusal (an endpoint that does not know the secret) is a WARN line at the default level, once per interval", async (t) => {
  const receiver = await startReceiver(t);
  const sink = new HttpSink({ url: receiver.url, secret: "not-the-endpoint-secret-0123456789" });
  t.after(() => sink.close());
  const lines: string[] = [];
  const logger = {
    debug() {},
    info() {},
    warn: (line: string) => lines.push(line),
    error: (line: string) => lines.push(line),
  };
  const server = createStoringServer({ hosts: "127.0.0.1", ports: 0, logger }, sink);
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  for (let i = 0; i < 3; i++) {
    const client = await RawClient.greeted(server.ports[0] as number);
    await client.command("EHLO x.test");
    await client.command("MAIL FROM:<a@x.test>");
    await client.command("RCPT TO:<b@y.test>");
    await client.command("DATA");
    assert.match(await client.command("Subject: hi\r\n\r\nbody\r\n."), /^451 4\.3\.0 /);
    client.close();
  }
  assert.equal(lines.length, 1, lines.join("\n"));
  assert.match(lines[0] ?? "", /Refused 127\.0\.0\.1: its message got 451 4\.3\.0 HTTP sink .*answered 401/);
});
