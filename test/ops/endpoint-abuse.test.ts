/**
 * The operations endpoint under a hostile client: pipelined requests must not each start a metrics
 * render (one connection could otherwise queue thousands of renders, and with --workers thousands of
 * IPC requests to every worker, stalling the process that also accepts the SMTP connections).
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { OperationsEndpoint } from "../../src/ops/endpoint.js";

function countingHandlers(renderMs: number) {
  const calls = { metrics: 0, readiness: 0, running: 0, mostAtOnce: 0 };
  const run = async <T>(value: T): Promise<T> => {
    calls.running++;
    calls.mostAtOnce = Math.max(calls.mostAtOnce, calls.running);
    await delay(renderMs);
    calls.running--;
    return value;
  };
  return {
    calls,
    handlers: {
      metrics: () => {
        calls.metrics++;
        return run({ text: "mailgate_up 1\n", contentType: "text/plain; version=0.0.4" });
      },
      readiness: () => {
        calls.readiness++;
        return run(null);
      },
    },
  };
}

/** A /healthz probe's status, 0 when it got no answer within `ms` (a fetch kept out may never settle). */
function probeStatus(endpoint: OperationsEndpoint, ms: number): Promise<number> {
  return fetch(`${endpoint.url}/healthz`, { signal: AbortSignal.timeout(ms) }).then(
    (response) => response.status,
    () => 0,
  );
}

/** Writes `count` pipelined GETs of `path` at once; resolves with the status codes of the `count` responses. */
function pipelined(port: number, path: string, count: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let text = "";
    socket.setEncoding("latin1");
    socket.on("connect", () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(count)));
    const statuses = () => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
    socket.on("data", (chunk: string) => {
      text += chunk;
      if (statuses().length < count) return;
      socket.destroy();
      resolve(statuses());
    });
    socket.on("error", reject);
    socket.on("close", () => reject(new Error(`closed after ${statuses().length} responses`)));
  });
}

test("thousands of pipelined /metrics requests share the renders; beyond 100 on a connection, 503", async () => {
  const { calls, handlers } = countingHandlers(50);
  const endpoint = await OperationsEndpoint.listen("127.0.0.1", 0, handlers);
  try {
    const port = Number(new URL(endpoint.url).port);
    const statuses = await pipelined(port, "/metrics", 3000);
    assert.deepEqual(statuses.slice(0, 100), Array(100).fill(200));
    assert.deepEqual(new Set(statuses.slice(100)), new Set([503]));
    assert.equal(calls.mostAtOnce, 1, "one render at a time, whatever the requests");
    assert.ok(calls.metrics <= 3, `renders: ${calls.metrics}`);
    // The endpoint still serves the next scrape.
    const after = await fetch(`${endpoint.url}/metrics`);
    assert.equal(after.status, 200);
    assert.equal(await after.text(), "mailgate_up 1\n");
  } finally {
    await endpoint.close();
  }
});

test("pipelined /readyz probes share one readiness check", async () => {
  const { calls, handlers } = countingHandlers(50);
  const endpoint = await OperationsEndpoint.listen("127.0.0.1", 0, handlers);
  try {
    const port = Number(new URL(endpoint.url).port);
    const statuses = await pipelined(port, "/readyz", 2000);
    assert.equal(statuses[0], 200);
    assert.equal(calls.mostAtOnce, 1);
    assert.ok(calls.readiness <= 3, `checks: ${calls.readiness}`);
  } finally {
    await endpoint.close();
  }
});

test("concurrent scrapes on separate connections run one render at a time", async () => {
  const { calls, handlers } = countingHandlers(30);
  const endpoint = await OperationsEndpoint.listen("127.0.0.1", 0, handlers);
  try {
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => fetch(`${endpoint.url}/metrics`).then((r) => r.text())),
    );
    assert.ok(responses.every((text) => text === "mailgate_up 1\n"));
    assert.equal(calls.mostAtOnce, 1);
  } finally {
    await endpoint.close();
  }
});

test("64 connections that send nothing do not keep a probe out (the one idle longest makes room), and are closed after the request timeout (10 s, checked each second), not 30 s", async () => {
  const { handlers } = countingHandlers(0);
  const endpoint = await OperationsEndpoint.listen("127.0.0.1", 0, handlers);
  const port = Number(new URL(endpoint.url).port);
  const started = Date.now();
  const idle = Array.from({ length: 64 }, () => connect(port, "127.0.0.1"));
  const closedAfter = idle.map(
    (socket) =>
      new Promise<number>((resolve) => {
        socket.on("error", () => {});
        socket.on("close", () => resolve(Date.now() - started));
        socket.resume(); // read the 408 and the server's FIN, or 'close' never comes
      }),
  );
  try {
    // While they hold every slot, a probe gets in: the connection silent longest is closed for it (it used
    // to be kept out until the silent ones timed out; the probe is bounded, as such a fetch never settled).
    await delay(1000);
    const meanwhile = await probeStatus(endpoint, 3000);
    assert.equal(meanwhile, 200, "a probe was kept out by 64 silent connections");
    // The server closes them; the bound tells 10 s checked each second from Node's default 30 s check, with
    // room for a loaded machine (a fixed 40 s cap keeps the test from hanging if they are never closed).
    const cap = delay(40_000, undefined, { ref: false }).then(() => Number.POSITIVE_INFINITY);
    const lastClosed = await Promise.race([
      Promise.all(closedAfter).then((times) => Math.max(...times)),
      cap,
    ]);
    assert.ok(
      lastClosed >= 9_000,
      `the silent connections were closed after ${lastClosed} ms, before the timeout`,
    );
    assert.ok(lastClosed < 22_000, `the silent connections were closed only after ${lastClosed} ms`);
    const after = await fetch(`${endpoint.url}/healthz`, { signal: AbortSignal.timeout(5000) });
    assert.equal(after.status, 200);
  } finally {
    for (const socket of idle) socket.destroy();
    await endpoint.close();
  }
});

test("64 keep-alive connections, each answered once and idle since, do not keep a probe out", async () => {
  const { handlers } = countingHandlers(0);
  const endpoint = await OperationsEndpoint.listen("127.0.0.1", 0, handlers);
  const port = Number(new URL(endpoint.url).port);
  const held = await Promise.all(
    Array.from(
      { length: 64 },
      () =>
        new Promise<Socket>((resolve, reject) => {
          const socket = connect(port, "127.0.0.1");
          socket.on("error", reject);
          socket.once("data", () => resolve(socket)); // its answer: the connection stays open, idle
          socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        }),
    ),
  );
  try {
    const probe = await probeStatus(endpoint, 3000);
    assert.equal(probe, 200);
    await delay(100);
    assert.equal(held.filter((socket) => socket.destroyed || socket.readableEnded).length >= 1, true);
  } finally {
    for (const socket of held) socket.destroy();
    await endpoint.close();
  }
});

test("64 connections that ask and never read the answers make room for a probe once their answers have waited 10 s", async () => {
  const big = "x".repeat(256 * 1024); // answers that fill the socket buffers at once
  const endpoint = await OperationsEndpoint.listen("127.0.0.1", 0, {
    metrics: async () => ({ text: big, contentType: "text/plain" }),
    readiness: async () => null,
  });
  const port = Number(new URL(endpoint.url).port);
  const stuck = Array.from({ length: 64 }, () => {
    const socket = connect(port, "127.0.0.1");
    socket.on("error", () => {});
    socket.pause(); // never reads
    socket.write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(20));
    return socket;
  });
  const probe = () => probeStatus(endpoint, 2000);
  try {
    await delay(1000);
    // Their answers have waited a second: they are still making progress as far as anyone can tell.
    assert.equal(await probe(), 0);
    // Before: kept out for good. A bounded wait (the answers' 10 s, checked on each new connection).
    let status = 0;
    for (let attempt = 0; status !== 200 && attempt < 15; attempt++) {
      await delay(1000);
      status = await probe();
    }
    assert.equal(status, 200);
  } finally {
    for (const socket of stuck) socket.destroy();
    await endpoint.close();
  }
});

test("a client churning connections evicts its own, not a slow probe from another address", async () => {
  const { handlers } = countingHandlers(0);
  const endpoint = await OperationsEndpoint.listen("127.0.0.1", 0, handlers);
  const port = Number(new URL(endpoint.url).port);
  const opened: Socket[] = [];
  const churn = async (count: number) => {
    for (let i = 0; i < count; i++) {
      const socket = connect({ port, host: "127.0.0.1", localAddress: "127.0.0.1" });
      socket.on("error", () => {});
      socket.resume();
      opened.push(socket);
      await new Promise((resolve) => socket.once("connect", resolve));
    }
  };
  try {
    await churn(64);
    // A probe from another address connects, and is slow to send its request.
    const probe = connect({ port, host: "127.0.0.1", localAddress: "127.0.0.2" });
    let answer = "";
    probe.on("data", (chunk: Buffer) => {
      answer += chunk.toString("latin1");
    });
    const closed = new Promise((resolve) => probe.once("close", resolve));
    probe.on("error", () => {});
    await new Promise((resolve) => probe.once("connect", resolve));
    await churn(150); // meanwhile the other client opens (and leaves idle) many more
    probe.end("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    await Promise.race([closed, delay(5000)]);
    // Before: by then the probe was the connection idle longest, and closed for one of the others.
    assert.match(answer, /^HTTP\/1\.1 200 /);
  } finally {
    for (const socket of opened) socket.destroy();
    await endpoint.close();
  }
});
