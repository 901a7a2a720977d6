/**
 * HttpSink failures: every answer but a 2xx after the whole body, a silent endpoint, a reset, a refused
 * connection and a full window answer 451 4.3.0; an endpoint's JSON refusal becomes its SMTP reply, cleaned;
 * a message the session aborts aborts its request, and nothing is stored.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, type TestContext, test } from "node:test";
import { SmtpError } from "../../src/protocol/errors.js";
import { HttpSink, type HttpSinkOptions, refusalFrom } from "../../src/sinks/http.js";
import { freePort, RawClient, waitFor } from "../helpers/clients.js";
import { SECRET, startReceiver, startSmtp } from "./http-helpers.js";

/** A loopback HTTP server answering with `handler`; closed (connections cut) when the test ends. */
async function endpoint(
  t: TestContext,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook` };
}

function sinkFor(t: TestContext, url: string, options: Partial<HttpSinkOptions> = {}): HttpSink {
  const sink = new HttpSink({ url, secret: SECRET, requestTimeout: 400, ...options });
  t.after(() => sink.close(100));
  return sink;
}

async function* chunks(...parts: (string | Buffer)[]): AsyncGenerator<Buffer> {
  for (const part of parts) yield Buffer.from(part);
}

const ENVELOPE = { from: "a@x.test", to: ["b@y.test"] };

function isTemporary(pattern: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof SmtpError, String(error));
    assert.equal(error.render(), "451 4.3.0 Temporary failure in the mail system; try again later\r\n");
    assert.match(error.message, pattern);
    return true;
  };
}

/** Reads the request to its end, then answers. */
function answerAfterBody(status: number, body = "", type = "application/json") {
  return (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on("end", () => res.writeHead(status, { "Content-Type": type }).end(body));
  };
}

describe("HttpSink failures", () => {
  test("HTTP 500 (buffered and streamed) answers 451 4.3.0", async (t) => {
    const { url } = await endpoint(t, answerAfterBody(500, "oops", "text/plain"));
    for (const bufferMessagesUpTo of [65536, 0]) {
      const sink = sinkFor(t, url, { bufferMessagesUpTo });
      await assert.rejects(
        sink.deliver(ENVELOPE, chunks("Subject: x\r\n\r\nhi\r\n")),
        isTemporary(/answered 500/),
      );
    }
  });

  test("a 4xx with a JSON refusal becomes that reply through an SMTP session, with no CR/LF from the endpoint", async (t) => {
    const refusal = {
      smtp: { code: 550, enhanced: "5.7.1", text: "No such user here\r\n250 2.0.0 Ok\u0000 — sorry" },
    };
    const { url } = await endpoint(t, answerAfterBody(422, JSON.stringify(refusal)));
    const sink = sinkFor(t, url);
    const { port } = await startSmtp(t, sink);
    const client = await RawClient.greeted(port);
    t.after(() => client.close());
    await client.command("EHLO client.test");
    await client.command("MAIL FROM:<a@x.test>");
    await client.command("RCPT TO:<b@y.test>");
    await client.command("DATA");
    const reply = await client.command("Subject: x\r\n\r\nhi\r\n.");
    assert.equal(reply, "550 5.7.1 No such user here 250 2.0.0 Ok sorry\r\n");
    assert.match(await client.command("NOOP"), /^250 /); // the session goes on
  });

  test("refusals the sink does not pass on: wrong codes, wrong classes, no JSON", () => {
    const json = "application/json; charset=utf-8";
    const reply = (code: unknown, enhanced?: unknown, status = 422, type = json) =>
      refusalFrom(status, type, JSON.stringify({ smtp: { code, enhanced, text: "t" } }));
    assert.equal(reply(550, "5.1.1")?.render(), "550 5.1.1 t\r\n");
    assert.equal(reply(452, "4.2.2")?.render(), "452 4.2.2 t\r\n");
    assert.equal(reply(554, "4.7.1")?.render(), "554 5.0.0 t\r\n"); // enhanced of the wrong class: standard one
    assert.equal(reply(553, "5.1.x")?.render(), "553 5.1.3 t\r\n");
    for (const code of [421, 521, 250, 354, 600, "550", 550.5])
      assert.equal(reply(code), undefined, String(code));
    assert.equal(reply(550, "5.1.1", 200), undefined); // only on 4xx/5xx
    assert.equal(reply(550, "5.1.1", 422, "text/plain"), undefined);
    assert.equal(refusalFrom(422, json, "not json"), undefined);
    assert.equal(refusalFrom(422, json, '{"smtp": null}'), undefined);
    assert.equal(
      refusalFrom(422, json, JSON.stringify({ smtp: { code: 550, text: "x".repeat(1000) } }))?.replyText
        .length,
      200,
    );
  });

  test("an endpoint that never answers: 451 after requestTimeout", async (t) => {
    const { url } = await endpoint(t, (req) => req.resume());
    const sink = sinkFor(t, url);
    await assert.rejects(
      sink.deliver(ENVELOPE, chunks("Subject: x\r\n\r\nhi\r\n")),
      isTemporary(/waiting for the answer after 400 ms/),
    );
    assert.equal(sink.inFlight, 0);
  });

  test("an endpoint that resets the connection, or is not there: 451", async (t) => {
    const { url } = await endpoint(t, (req) => req.socket.resetAndDestroy());
    for (const bufferMessagesUpTo of [65536, 0]) {
      const sink = sinkFor(t, url, { bufferMessagesUpTo });
      await assert.rejects(
        sink.deliver(ENVELOPE, chunks("Subject: x\r\n\r\nhi\r\n")),
        isTemporary(/ECONNRESET/),
      );
    }
    const closed = sinkFor(t, `http://127.0.0.1:${await freePort()}/`);
    await assert.rejects(closed.deliver(ENVELOPE, chunks("Subject: x\r\n\r\n")), isTemporary(/ECONNREFUSED/));
  });

  test("a 200 before the whole body was sent is no acceptance", async (t) => {
    const { url } = await endpoint(t, (_req, res) => res.writeHead(200).end("fine"));
    const sink = sinkFor(t, url, { bufferMessagesUpTo: 0 });
    async function* slow(): AsyncGenerator<Buffer> {
      yield Buffer.from("Subject: x\r\n\r\n");
      await new Promise((resolve) => setTimeout(resolve, 100));
      yield Buffer.from("rest\r\n");
    }
    await assert.rejects(
      sink.deliver(ENVELOPE, slow()),
      isTemporary(/answered 200 before the whole message/),
    );
  });

  test("a message the session aborts aborts its request: the receiver stores nothing", async (t) => {
    const receiver = await startReceiver(t);
    let aborted = 0;
    receiver.server.on("request", (req: IncomingMessage) => req.on("aborted", () => aborted++));
    const sink = sinkFor(t, receiver.url, { bufferMessagesUpTo: 1024 });
    const failure = new Error("client gone");
    async function* broken(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(4096, "a");
      await waitFor(() => receiver.server.listenerCount("request") > 0, "request");
      await new Promise((resolve) => setTimeout(resolve, 50));
      throw failure;
    }
    await assert.rejects(sink.deliver(ENVELOPE, broken()), (error) => error === failure);
    await waitFor(() => aborted === 1, "the receiver to see the aborted request");
    assert.equal(receiver.stored.size, 0);
    assert.equal((await receiver.messages()).length, 0);
    assert.equal(sink.inFlight, 0);
  });

  test("beyond maxInFlight a delivery waits for a place, and answers 451 when none frees in time", async (t) => {
    const held: ServerResponse[] = [];
    const { url } = await endpoint(t, (req, res) => {
      req.resume();
      req.on("end", () => held.push(res));
    });
    const sink = sinkFor(t, url, { maxInFlight: 2, requestTimeout: 2000 });
    const first = [sink.deliver(ENVELOPE, chunks("1")), sink.deliver(ENVELOPE, chunks("2"))];
    await waitFor(() => held.length === 2, "two requests at the endpoint");
    const third = sink.deliver(ENVELOPE, chunks("3"));
    await waitFor(() => sink.waiting === 1, "the third delivery to wait");
    assert.equal(sink.inFlight, 2);
    held.shift()?.writeHead(200).end();
    assert.equal((await first[0])?.size, 1);
    await waitFor(() => held.length === 2, "the third request at the endpoint");
    for (const res of held.splice(0)) res.writeHead(200).end();
    assert.deepEqual(
      (await Promise.all([first[1], third])).map((r) => r?.size),
      [1, 1],
    );

    // A streamed message holds its place while its SMTP client is slow: the next delivery gives up after
    // requestTimeout.
    const short = sinkFor(t, url, { maxInFlight: 1, requestTimeout: 300, bufferMessagesUpTo: 0 });
    let finish: () => void = () => {};
    async function* slowClient(): AsyncGenerator<Buffer> {
      yield Buffer.from("Subject: slow\r\n\r\n");
      await new Promise<void>((resolve) => (finish = resolve));
      yield Buffer.from("end\r\n");
    }
    const slow = short.deliver(ENVELOPE, slowClient());
    await waitFor(() => short.inFlight === 1, "the slow message to hold the place");
    await assert.rejects(
      short.deliver(ENVELOPE, chunks("5")),
      isTemporary(/place in the window after 300 ms/),
    );
    finish();
    await waitFor(() => held.length === 1, "the slow request complete at the endpoint");
    held[0]?.writeHead(200).end();
    assert.equal((await slow).size, 22);
  });

  test("close() waits for deliveries under way, then refuses new ones", async (t) => {
    const held: ServerResponse[] = [];
    const { url } = await endpoint(t, (req, res) => {
      req.resume();
      req.on("end", () => held.push(res));
    });
    const sink = new HttpSink({ url, secret: SECRET, requestTimeout: 5000 });
    const delivery = sink.deliver(ENVELOPE, chunks("1"));
    await waitFor(() => held.length === 1, "the request at the endpoint");
    let closed = false;
    const closing = sink.close().then(() => (closed = true));
    await assert.rejects(sink.deliver(ENVELOPE, chunks("2")), isTemporary(/closing/));
    assert.equal(closed, false);
    held[0]?.writeHead(204).end();
    assert.equal((await delivery).size, 1);
    await closing;
  });
});
