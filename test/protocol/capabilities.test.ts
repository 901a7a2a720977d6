/**
 * The EHLO/LHLO offer (RFC 5321 4.1.1.1) as a pure function of the settings and the session's state: which
 * extension is offered when, and the exact text of each line.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type CapabilityState, capabilities } from "../../src/protocol/capabilities.js";
import type { SessionConfig } from "../../src/protocol/session.js";
import { XCLIENT_ATTRIBUTES, XFORWARD_ATTRIBUTES } from "../../src/protocol/xclient.js";
import { TEST_CONFIG } from "../helpers/session-harness.js";

const PLAIN: CapabilityState = {
  heloResponse: "mx.test at your service",
  encrypted: false,
  canStartTls: false,
  xclientTrusted: false,
};

function offer(config: Partial<SessionConfig>, state: Partial<CapabilityState> = {}): string[] {
  return capabilities({ ...TEST_CONFIG, ...config }, { ...PLAIN, ...state });
}

function withAuth(mode: SessionConfig["auth"]["mode"], overPlaintext: boolean): Partial<SessionConfig> {
  return { auth: { ...TEST_CONFIG.auth, mode, overPlaintext, mechanisms: ["PLAIN", "LOGIN"] } };
}

test("the greeting line first, then the extensions in their order, SIZE, ENHANCEDSTATUSCODES and HELP last", () => {
  assert.deepEqual(
    offer({ pipelining: true, internationalization: true, chunking: true, dsn: true, maxMessageSize: 1000 }),
    [
      "mx.test at your service",
      "PIPELINING",
      "8BITMIME",
      "SMTPUTF8",
      "CHUNKING",
      "BINARYMIME",
      "DSN",
      "SIZE 1000",
      "ENHANCEDSTATUSCODES",
      "HELP",
    ],
  );
  assert.deepEqual(
    offer({ pipelining: false, internationalization: false, chunking: false, dsn: false, maxMessageSize: 0 }),
    ["mx.test at your service", "SIZE", "ENHANCEDSTATUSCODES", "HELP"],
  );
});

test("AUTH is offered inside TLS, and before it only with authOverPlaintext; never when forbidden", () => {
  const auth = (lines: string[]) => lines.filter((line) => line.startsWith("AUTH"));
  for (const mode of ["optional", "required"] as const) {
    assert.deepEqual(auth(offer(withAuth(mode, false), { encrypted: true })), ["AUTH PLAIN LOGIN"]);
    assert.deepEqual(auth(offer(withAuth(mode, false), { encrypted: false })), []);
    assert.deepEqual(auth(offer(withAuth(mode, true), { encrypted: false })), ["AUTH PLAIN LOGIN"]);
  }
  assert.deepEqual(auth(offer(withAuth("forbidden", true), { encrypted: true })), []);
  assert.deepEqual(auth(offer(withAuth("forbidden", true), { encrypted: false })), []);
});

test("STARTTLS only when TLS is enabled, the transport can start it, and it is not active yet", () => {
  const has = (lines: string[]) => lines.includes("STARTTLS");
  assert.equal(has(offer({ tls: true }, { canStartTls: true })), true);
  assert.equal(has(offer({ tls: true }, { canStartTls: true, encrypted: true })), false);
  assert.equal(has(offer({ tls: true }, { canStartTls: false })), false);
  assert.equal(has(offer({ tls: false }, { canStartTls: true })), false);
});

test("REQUIRETLS only inside TLS, and only when enabled (RFC 8689)", () => {
  const has = (lines: string[]) => lines.includes("REQUIRETLS");
  assert.equal(has(offer({ requireTls: true }, { encrypted: true })), true);
  assert.equal(has(offer({ requireTls: true }, { encrypted: false })), false);
  assert.equal(has(offer({ requireTls: false }, { encrypted: true })), false);
  assert.ok(!offer({ requireTls: true }, { encrypted: true }).includes(""), "no empty line");
});

test("XCLIENT and XFORWARD, with their attribute names, only to a trusted peer", () => {
  const trusted = offer({}, { xclientTrusted: true });
  assert.ok(trusted.includes(`XCLIENT ${XCLIENT_ATTRIBUTES.join(" ")}`));
  assert.ok(trusted.includes(`XFORWARD ${XFORWARD_ATTRIBUTES.join(" ")}`));
  assert.ok(XFORWARD_ATTRIBUTES.length > 1 && XCLIENT_ATTRIBUTES.length > 1);
  assert.ok(!offer({}).some((line) => line.startsWith("XCLIENT") || line.startsWith("XFORWARD")));
});
