/**
 * Fuzz target: the SASL decoders (src/sasl/): the AUTH command's arguments, strict base64, and the
 * PLAIN, LOGIN, CRAM-MD5 and XOAUTH2 exchanges fed arbitrary client lines.
 *
 * Input: [mechanism and initial-response choice][lines separated by LF, read as latin1 so that a line's
 * length is its octet count, as the session passes them]. The first line is the AUTH command's arguments
 * when the choice says so, else the initial response (or none).
 *
 * Invariants:
 *   - nothing throws but the documented SaslError of parseAuthCommand (answered 501);
 *   - base64 is accepted exactly when it is canonical RFC 4648 text (a reference check, written apart);
 *   - every challenge is canonical base64; every failure is answered with a 5xx; lines over 12,288 octets are
 *     refused as too long, never decoded;
 *   - credentials carry no CR, LF or NUL in their identities, hide the secret from JSON and inspection,
 *     and verifyPassword answers for the password sent (PLAIN, LOGIN) and never throws (CRAM-MD5).
 */
import { inspect } from "node:util";
import { saslFailureError } from "../../src/protocol/auth-exchange.js";
import { SmtpError } from "../../src/protocol/errors.js";
import { decodeBase64Strict } from "../../src/sasl/base64.js";
import {
  createExchange,
  MAX_SASL_LINE_OCTETS,
  parseAuthCommand,
  SASL_MECHANISMS,
  type SaslCredentials,
  SaslError,
  type SaslStep,
} from "../../src/sasl/mechanism.js";
import { invariant } from "../finding.js";

/** RFC 4648 section 4 text, with the unused bits of a padded last quantum zero (checked apart). */
const CANONICAL_BASE64 =
  /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$/;

export function fuzz(data: Buffer): void {
  if (data.length < 1) return;
  const choice = data[0] as number;
  const lines = data.toString("latin1", 1).split("\n");
  for (const line of lines) checkBase64(line);

  const mechanism = SASL_MECHANISMS[choice % SASL_MECHANISMS.length] ?? "PLAIN";
  let initialResponse: string | undefined;
  if ((choice & 0x30) === 0x10) {
    initialResponse = lines.shift();
  } else if ((choice & 0x30) === 0x20) {
    initialResponse = parseArguments(lines.shift() ?? "");
  }
  const exchange = createExchange(mechanism, { hostname: "mx.test" });
  let step = exchange.start(initialResponse);
  for (const line of lines) {
    checkStep(step);
    if (step.kind !== "challenge") return;
    step = exchange.next(line);
    if (Buffer.byteLength(line, "latin1") > MAX_SASL_LINE_OCTETS) {
      invariant(
        step.kind === "failed" && saslFailureError(step.failure).code === 500,
        "an over-long line was not refused",
      );
    }
  }
  checkStep(step);
}

/** The AUTH command's arguments: the initial response they carry, or undefined. */
function parseArguments(args: string): string | undefined {
  try {
    return parseAuthCommand(args).initialResponse;
  } catch (error) {
    invariant(
      error instanceof SaslError && saslFailureError(error.failure).code === 501,
      `AUTH arguments threw ${String(error)}`,
    );
    return undefined;
  }
}

function checkBase64(text: string): void {
  const decoded = decodeBase64Strict(text);
  invariant((decoded !== undefined) === CANONICAL_BASE64.test(text), () => `base64 ${JSON.stringify(text)}`);
  if (decoded) invariant(decoded.toString("base64") === text, "base64 that does not round-trip");
}

function checkStep(step: SaslStep): void {
  if (step.kind === "challenge") {
    invariant(CANONICAL_BASE64.test(step.text), `a challenge that is not base64: ${step.text}`);
  } else if (step.kind === "failed") {
    const error = saslFailureError(step.failure);
    invariant(error instanceof SmtpError && error.code >= 500, `error ${error.message}`);
  } else {
    checkCredentials(step.credentials);
  }
}

function checkCredentials(credentials: SaslCredentials): void {
  const { mechanism, authorizationId, authenticationId, secret } = credentials;
  for (const identity of [authorizationId, authenticationId]) {
    invariant(!/[\r\n\0]/.test(identity), `${mechanism}: an identity with CR, LF or NUL`);
  }
  invariant(authenticationId !== "" && secret !== "", `${mechanism}: an empty user name or secret`);
  const shown = [JSON.stringify(credentials), inspect(credentials)];
  invariant(
    shown.every((text) => text.includes("[redacted]")),
    `${mechanism}: the secret is not redacted`,
  );
  if (mechanism === "PLAIN" || mechanism === "LOGIN") {
    invariant(
      credentials.verifyPassword?.(secret) === true,
      `${mechanism}: the password sent does not verify`,
    );
    invariant(
      credentials.verifyPassword?.(`${secret}x`) === false,
      `${mechanism}: another password verifies`,
    );
  } else if (mechanism === "CRAM-MD5") {
    invariant(/^[0-9a-f]{32}$/.test(secret), "CRAM-MD5: a digest that is not 32 lower-case hex digits");
    invariant(credentials.verifyPassword?.("pass") === false, "CRAM-MD5: a guessed digest verifies");
  }
}
