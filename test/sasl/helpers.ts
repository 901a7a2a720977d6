/** Shared assertions for the SASL exchange tests. */
import assert from "node:assert/strict";
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

/** Asserts an error step with the exact code and enhanced code; returns the error. */
export function expectError(step: SaslStep, code: number, enhanced: string): SmtpError {
  assert.equal(step.kind, "error", `expected an error, got ${JSON.stringify(describe(step))}`);
  if (step.kind !== "error") throw new Error("unreachable");
  assert.equal(step.error.code, code, step.error.message);
  assert.equal(step.error.enhancedCode, enhanced, step.error.message);
  assert.match(step.error.render(), new RegExp(`^${code} ${enhanced.replaceAll(".", "\\.")} \\S.*\\r\\n$`));
  return step.error;
}

/** Asserts that none of `secrets` appears in what the client or the log would see of an error. */
export function assertNoSecret(error: SmtpError, ...secrets: string[]): void {
  const visible = [error.message, error.render(), JSON.stringify(error.replyText)].join("\n");
  for (const secret of secrets) assert.ok(!visible.includes(secret), "a secret leaked into an error");
}

function describe(step: SaslStep): unknown {
  if (step.kind === "error") return { kind: "error", reply: step.error.render() };
  if (step.kind === "credentials") return { kind: "credentials", mechanism: step.credentials.mechanism };
  return step;
}
