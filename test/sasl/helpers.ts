/** Shared assertions for the SASL exchange tests. */
import assert from "node:assert/strict";
import { saslFailureError } from "../../src/protocol/auth-exchange.js";
import type { SmtpError } from "../../src/protocol/errors.js";
import type { SaslCredentials, SaslStep } from "../../src/sasl/mechanism.js";

/** Base64 of a string's UTF-8 bytes, the way a client encodes its responses. */
export const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");

/** Decodes a challenge for assertions. */
export const unb64 = (text: string): string => Buffer.from(text, "base64").toString("utf8");

export function expectChallenge(step: SaslStep, text?: string): string {
  assert.equal(step.kind, "challenge", `expected a challenge, got ${JSON.stringify(describe(step))}`);
  if (step.kind !== "challenge") throw new Error("unreachable");
  if (text !== undefined) assert.equal(step.text, text);
  return step.text;
}

export function expectCredentials(step: SaslStep): SaslCredentials {
  assert.equal(step.kind, "credentials", `expected credentials, got ${JSON.stringify(describe(step))}`);
  if (step.kind !== "credentials") throw new Error("unreachable");
  return step.credentials;
}

/**
 * Asserts a failed step whose reply (as the AUTH exchange answers it) has the exact code and enhanced
 * code; returns that reply's error.
 */
export function expectError(step: SaslStep, code: number, enhanced: string): SmtpError {
  assert.equal(step.kind, "failed", `expected a failure, got ${JSON.stringify(describe(step))}`);
  if (step.kind !== "failed") throw new Error("unreachable");
  const error = saslFailureError(step.failure);
  assert.equal(error.code, code, error.message);
  assert.equal(error.enhancedCode, enhanced, error.message);
  assert.match(error.render(), new RegExp(`^${code} ${enhanced.replaceAll(".", "\\.")} \\S.*\\r\\n$`));
  return error;
}

/** Asserts that none of `secrets` appears in what the client or the log would see of an error. */
export function assertNoSecret(error: SmtpError, ...secrets: string[]): void {
  const visible = [error.message, error.render(), JSON.stringify(error.replyText)].join("\n");
  for (const secret of secrets) assert.ok(!visible.includes(secret), "a secret leaked into an error");
}

function describe(step: SaslStep): unknown {
  if (step.kind === "failed") return { kind: "failed", reply: saslFailureError(step.failure).render() };
  if (step.kind === "credentials") return { kind: "credentials", mechanism: step.credentials.mechanism };
  return step;
}
