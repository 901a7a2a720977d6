/**
 * The context a connection starts with: every documented field (no more, no fewer) with its initial
 * value; nothing shared between two contexts (hooks may change any of it); and
 * ctx.message.write refused until a session installs its own.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createContext, emptyEnvelope } from "../../src/protocol/context.js";

const ENDS = {
  localIp: "192.0.2.1",
  localPort: 25,
  remoteIp: "198.51.100.7",
  remotePort: 40000,
  localResponse: "mx.test ESMTP ready",
  heloResponse: "mx.test at your service",
};

test("a new context: the fields of ctx.server and their initial values", () => {
  const before = Date.now();
  const { server } = createContext(ENDS);
  const { connected, ...rest } = server;
  assert.ok(connected instanceof Date && connected.getTime() >= before && connected.getTime() <= Date.now());
  assert.deepEqual(rest, {
    ...ENDS,
    localHost: "192.0.2.1",
    remoteHost: "198.51.100.7",
    helo: "",
    heloCommand: "",
    exceptions: 0,
    errors: [],
    authorizationId: "",
    authenticationId: "",
    authenticated: null,
    authMechanism: "",
    encrypted: null,
    tls: null,
    proxy: null,
  });
  assert.equal(Object.getPrototypeOf(server), Object.prototype);
});

test("a UNIX socket peer is localhost, with no address", () => {
  const { server } = createContext({ ...ENDS, localIp: "", remoteIp: "", localPort: 0, remotePort: 0 });
  assert.equal(server.localHost, "localhost");
  assert.equal(server.remoteHost, "localhost");
  assert.equal(server.remoteIp, "");
});

test("the initial envelope and message, and emptyEnvelope()", () => {
  const { envelope, message } = createContext(ENDS);
  for (const candidate of [envelope, emptyEnvelope()]) {
    assert.deepEqual(candidate, {
      from: "",
      to: [],
      encodingBody: "",
      encodingUtf8: "",
      declaredSize: null,
      mailParams: Object.create(null),
      rcptParams: [],
      dsn: { ret: null, envid: null },
      rcptDsn: [],
      requireTls: false,
      forwarded: {},
    });
    // Like parsed parameters: no inherited names (a "constructor" parameter is just a parameter).
    assert.equal(Object.getPrototypeOf(candidate.mailParams), null);
    assert.equal("toString" in candidate.mailParams, false);
  }
  // The documented fields, whatever their order (deepEqual on the values checks the same for the others).
  assert.deepEqual(Object.keys(message).sort(), [
    "bytesize",
    "crlf",
    "data",
    "delivered",
    "headers",
    "received",
    "write",
  ]);
  assert.equal(message.received, null);
  assert.equal(message.delivered, null);
  assert.equal(message.bytesize, 0);
  assert.equal(message.headers, false);
  assert.equal(message.crlf, "\r\n");
  assert.equal(message.data.length, 0);
  assert.throws(() => message.write("X-Test: 1\r\n"), {
    message: "ctx.message.write() is only available while message data is being received",
  });
});

test("two contexts share nothing a hook could change", () => {
  const a = createContext(ENDS);
  const b = createContext(ENDS);
  a.server.errors.push(new Error("x"));
  a.server.localResponse = "changed";
  a.envelope.to.push("rcpt@example.org");
  a.envelope.rcptParams.push(Object.create(null));
  a.envelope.rcptDsn.push({ notify: null, orcpt: null });
  a.envelope.mailParams.SIZE = "10";
  a.envelope.dsn.ret = "FULL";
  a.envelope.forwarded.name = "client.example";
  a.message.bytesize = 10;
  a.message.write = () => {};
  const fresh = createContext(ENDS);
  fresh.server.connected = b.server.connected;
  assert.deepEqual(b, fresh);
  assert.deepEqual(b.server.errors, []);
  assert.notEqual(a.server.connected, b.server.connected);
  const [first, second] = [emptyEnvelope(), emptyEnvelope()];
  first.mailParams.BODY = "8BITMIME";
  first.dsn.envid = "id";
  first.forwarded.addr = "192.0.2.9";
  assert.deepEqual(second, emptyEnvelope());
});
