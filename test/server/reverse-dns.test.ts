/** doDnsReverseLookup: names when the lookup answers, never a greeting held past reverseLookupTimeout. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SmtpServer, type SmtpServerOptions } from "../../src/server/server.js";
import { RawClient, silentLogger } from "../helpers/clients.js";

const QUIET: SmtpServerOptions = {
  ports: 0,
  hostname: "mx.test",
  logger: silentLogger,
  loggerSeverity: "fatal",
};

class FakeDnsServer extends SmtpServer {
  constructor(
    options: SmtpServerOptions,
    private readonly answer: (ip: string) => Promise<string>,
  ) {
    super(options);
  }
  protected override lookupHostname(ip: string): Promise<string> {
    return this.answer(ip);
  }
}

async function greetingFor(
  server: SmtpServer,
): Promise<{ ms: number; remoteHost: string; localHost: string }> {
  let seen = { remoteHost: "", localHost: "" };
  server.onConnect = (ctx) => {
    seen = { remoteHost: ctx.server.remoteHost, localHost: ctx.server.localHost };
  };
  await server.start();
  try {
    const begin = Date.now();
    const client = await RawClient.greeted(server.ports[0] as number);
    const ms = Date.now() - begin;
    client.close();
    return { ms, ...seen };
  } finally {
    await server.stop({ gracefully: false });
  }
}

test("a reverse lookup that answers names the client and the local end", async () => {
  const server = new FakeDnsServer({ ...QUIET, doDnsReverseLookup: true }, async (ip) => `host-${ip}.test`);
  const seen = await greetingFor(server);
  assert.equal(seen.remoteHost, "host-127.0.0.1.test");
  assert.equal(seen.localHost, "host-127.0.0.1.test");
});

test("a lookup that never answers holds the greeting no longer than reverseLookupTimeout", async () => {
  const server = new FakeDnsServer(
    { ...QUIET, doDnsReverseLookup: true, reverseLookupTimeout: 200 },
    () => new Promise<string>(() => {}),
  );
  const seen = await greetingFor(server);
  assert.equal(seen.remoteHost, "127.0.0.1", "the address stands in for the name");
  assert.ok(seen.ms >= 150 && seen.ms < 2000, `greeting after ${seen.ms} ms`);
});

test("a failing lookup leaves the address as the host", async () => {
  const server = new FakeDnsServer({ ...QUIET, doDnsReverseLookup: true }, async () => {
    throw new Error("ENOTFOUND");
  });
  assert.equal((await greetingFor(server)).remoteHost, "127.0.0.1");
});

test("without doDnsReverseLookup no lookup happens", async () => {
  let asked = false;
  const server = new FakeDnsServer(QUIET, async (ip) => {
    asked = true;
    return ip;
  });
  await greetingFor(server);
  assert.equal(asked, false);
});

test("the real resolver answers or falls back within the deadline", async () => {
  const server = new SmtpServer({ ...QUIET, doDnsReverseLookup: true, reverseLookupTimeout: 1000 });
  const seen = await greetingFor(server);
  assert.ok(seen.ms < 3000, `greeting after ${seen.ms} ms`);
  assert.ok(seen.remoteHost.length > 0);
});
