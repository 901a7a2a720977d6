/**
 * SASL mechanisms for SMTP AUTH (RFC 4954) as pure exchanges: no socket, no timer, no hook. The session
 * feeds the AUTH command's initial response and then one client line at a time; each step says what to
 * send (a 334 challenge or an error) or hands over the credentials for the auth hook to judge.
 *
 * Mechanisms: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login), CRAM-MD5 (RFC 2195) and Google's
 * XOAUTH2. Rules common to all (RFC 4954 section 4): responses are strict base64, "=" as the initial
 * response means an empty one, a line "*" cancels the exchange, lines up to 12,288 octets are accepted.
 * Decoded text must be valid UTF-8 (RFC 4616 section 2).
 *
 * No error text or log message built here contains a secret, a user name or a decoded response.
 */
import { isUtf8 } from "node:buffer";
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { inspect } from "node:util";
import { decodeBase64Strict, encodeBase64 } from "./base64.js";

export type SaslMechanismName = "PLAIN" | "LOGIN" | "CRAM-MD5" | "XOAUTH2";

/** Every mechanism createExchange() implements, in the order an EHLO `AUTH` line may list them. */
export const SASL_MECHANISMS: readonly SaslMechanismName[] = Object.freeze([
  "PLAIN",
  "LOGIN",
  "CRAM-MD5",
  "XOAUTH2",
]);

/**
 * RFC 4954 section 4: the longest client response line (base64, without CRLF) that is accepted.
 * The line reader must let AUTH continuation lines of this length (plus CRLF) through.
 */
export const MAX_SASL_LINE_OCTETS = 12288;

export interface SaslCredentials {
  mechanism: SaslMechanismName;
  /** The identity to act as; "" when the client gave none (only PLAIN can give one). */
  authorizationId: string;
  /** The user name. */
  authenticationId: string;
  /**
   * PLAIN and LOGIN: the password. CRAM-MD5: the client's digest as 32 lower-case hex digits.
   * XOAUTH2: the bearer token. Never log it (util.inspect and JSON.stringify show it redacted).
   */
  secret: string;
  /** CRAM-MD5 only: the challenge we sent (decoded, e.g. "<1234.5678@mx.example>"). */
  challenge?: string;
  /**
   * PLAIN, LOGIN and CRAM-MD5: true when `password` is the user's password, compared in constant
   * time. For CRAM-MD5 it checks that HMAC-MD5(password, challenge) is the client's digest, which is
   * the only way to check CRAM-MD5 without the plaintext password. Absent for XOAUTH2.
   */
  verifyPassword?(password: string): boolean;
}

export type SaslStep =
  /** Send "334 " + text (already base64, may be ""), then feed the client's next line to next(). */
  | { kind: "challenge"; text: string }
  /** The exchange is over: give these to the auth hook (235 on success, 535 5.7.8 on denial). */
  | { kind: "credentials"; credentials: SaslCredentials }
  /** The exchange is over: it failed (the protocol answers the failure with its reply). */
  | { kind: "failed"; failure: SaslFailure };

export interface SaslExchange {
  readonly mechanism: SaslMechanismName;
  /**
   * Begins the exchange with the AUTH command's initial response: undefined when absent, "=" for an
   * empty one (RFC 4954 section 4). Call once, first.
   */
  start(initialResponse: string | undefined): SaslStep;
  /**
   * One client line during the exchange, without its CRLF. Its length is counted in UTF-8 octets
   * (pass lines decoded as latin1 or ASCII for an exact octet count). Call only after a "challenge".
   */
  next(line: string): SaslStep;
}

export interface SaslExchangeOptions {
  /** Our host name; CRAM-MD5 puts it in its challenge. */
  hostname: string;
}

export interface AuthCommand {
  /** The mechanism name in upper case (not necessarily one we implement). */
  mechanism: string;
  /** The initial response as sent (base64, or "=" for an empty one); undefined when absent. */
  initialResponse: string | undefined;
}

// ---------------------------------------------------------------------------------------------------
// Failures. SASL knows nothing of SMTP replies: it says what went wrong, the protocol picks the reply.

/** What kind of failure ended an exchange (or refused an AUTH command's arguments). */
export type SaslFailureKind =
  /** The AUTH command's arguments are not `mechanism [initial-response]`. */
  | "syntax"
  /** A mechanism we do not implement or do not offer (RFC 4954 section 6). */
  | "unknown-mechanism"
  /** A response that is not what the mechanism expects (bad base64, bad UTF-8, missing fields). */
  | "malformed"
  /** The client sent "*" (RFC 4954 section 4). */
  | "cancelled"
  /** A response line over MAX_SASL_LINE_OCTETS. */
  | "too-long"
  /** An initial response to a mechanism where the server speaks first (RFC 4954 section 6). */
  | "initial-response-not-allowed";

/** A failure and its reason, a text safe to show the client: it never holds a secret or a response. */
export interface SaslFailure {
  kind: SaslFailureKind;
  reason: string;
}

/** Thrown by parseAuthCommand; carries the failure. */
export class SaslError extends Error {
  constructor(readonly failure: SaslFailure) {
    super(failure.reason);
    this.name = "SaslError";
  }
}

/** A mechanism we do not implement or do not offer. A fresh value each time. */
export function unrecognizedMechanism(): SaslFailure {
  return { kind: "unknown-mechanism", reason: "Unrecognized authentication type" };
}

function syntaxError(): SaslError {
  return new SaslError({ kind: "syntax", reason: "Syntax: AUTH mechanism [initial-response]" });
}

function malformed(reason: string): SaslFailure {
  return { kind: "malformed", reason };
}

const invalidBase64 = (): SaslFailure => malformed("Cannot decode response: invalid base64");
const invalidUtf8 = (): SaslFailure => malformed("Cannot decode response: invalid UTF-8");
const cancelled = (): SaslFailure => ({ kind: "cancelled", reason: "Authentication cancelled" });
const tooLong = (): SaslFailure => ({ kind: "too-long", reason: "Authentication exchange line is too long" });

/** Thrown inside a mechanism's parser; turned into a "failed" step. */
class StepError extends Error {
  constructor(readonly failure: SaslFailure) {
    super(failure.reason);
  }
}

// ---------------------------------------------------------------------------------------------------
// The AUTH command

/** RFC 4954 section 7: sasl-mech = 1*20mech-char, mech-char = UPPER-ALPHA / DIGIT / "-" / "_". */
const MECHANISM_SYNTAX = /^[A-Za-z0-9_-]{1,20}$/;

/**
 * Splits the arguments of AUTH ("PLAIN dGVzdA==") into the mechanism (upper-cased) and the optional
 * initial response. Throws a SaslError ("syntax") when the mechanism is missing or malformed or more
 * than two arguments are given. The initial response is checked by the exchange's start(). An
 * unknown but well-formed mechanism is the caller's to refuse with unrecognizedMechanism().
 */
export function parseAuthCommand(args: string): AuthCommand {
  const parts = args.split(" ").filter((part) => part !== "");
  if (parts.length < 1 || parts.length > 2) throw syntaxError();
  const mechanism = parts[0] as string;
  // Checked before upper-casing: "plaın" (dotless i) would otherwise become "PLAIN".
  if (!MECHANISM_SYNTAX.test(mechanism)) throw syntaxError();
  return { mechanism: mechanism.toUpperCase(), initialResponse: parts[1] };
}

export function isSaslMechanismName(name: string): name is SaslMechanismName {
  return (SASL_MECHANISMS as readonly string[]).includes(name);
}

// ---------------------------------------------------------------------------------------------------
// Credentials

const REDACTED = "[redacted]";

/** Hashing both sides first makes the comparison constant-time whatever the lengths. */
function equalSecrets(a: string, b: string): boolean {
  const hashA = createHash("sha256").update(a, "utf8").digest();
  const hashB = createHash("sha256").update(b, "utf8").digest();
  return timingSafeEqual(hashA, hashB);
}

class Credentials implements SaslCredentials {
  challenge?: string;
  verifyPassword?: (password: string) => boolean;

  constructor(
    readonly mechanism: SaslMechanismName,
    readonly authorizationId: string,
    readonly authenticationId: string,
    readonly secret: string,
  ) {}

  /** What a log line shows: everything but the secret. */
  private redacted(): Record<string, unknown> {
    const { mechanism, authorizationId, authenticationId, challenge } = this;
    return {
      mechanism,
      authorizationId,
      authenticationId,
      secret: REDACTED,
      ...(challenge === undefined ? {} : { challenge }),
    };
  }

  toJSON(): Record<string, unknown> {
    return this.redacted();
  }

  [inspect.custom](): Record<string, unknown> {
    return this.redacted();
  }
}

function passwordCredentials(
  mechanism: "PLAIN" | "LOGIN",
  authorizationId: string,
  authenticationId: string,
  password: string,
): SaslCredentials {
  const credentials = new Credentials(mechanism, authorizationId, authenticationId, password);
  credentials.verifyPassword = (candidate) => equalSecrets(candidate, password);
  return credentials;
}

// ---------------------------------------------------------------------------------------------------
// Decoding client responses

/** The length rule and the cancel line of RFC 4954 section 4, then strict base64. */
function decodeLine(line: string): Buffer {
  // Counting UTF-16 units first keeps a huge line from being measured in full.
  if (line.length > MAX_SASL_LINE_OCTETS || Buffer.byteLength(line, "utf8") > MAX_SASL_LINE_OCTETS) {
    throw new StepError(tooLong());
  }
  if (line === "*") throw new StepError(cancelled());
  const decoded = decodeBase64Strict(line);
  if (decoded === undefined) throw new StepError(invalidBase64());
  return decoded;
}

/** Like decodeLine, but "=" is an empty response and "*" is not a cancellation (it is invalid). */
function decodeInitialResponse(initialResponse: string): Buffer {
  if (initialResponse === "=") return Buffer.alloc(0);
  if (initialResponse === "*") throw new StepError(invalidBase64());
  return decodeLine(initialResponse);
}

function utf8(bytes: Buffer): string {
  if (!isUtf8(bytes)) throw new StepError(invalidUtf8());
  return bytes.toString("utf8");
}

/** Identities end up in logs, headers and the session context: no line breaks, no NUL. */
const UNSAFE_IDENTITY = /[\r\n\0]/;

function checkIdentity(identity: string): void {
  if (UNSAFE_IDENTITY.test(identity)) throw new StepError(malformed("Line break or NUL in identity"));
}

// ---------------------------------------------------------------------------------------------------
// Exchanges

type Phase = "new" | "running" | "done";

abstract class Exchange implements SaslExchange {
  abstract readonly mechanism: SaslMechanismName;
  private phase: Phase = "new";

  start(initialResponse: string | undefined): SaslStep {
    if (this.phase !== "new") throw new Error(`${this.mechanism} exchange already started`);
    this.phase = "running";
    return this.run(() => {
      if (initialResponse === undefined) return this.begin();
      if (!this.allowsInitialResponse) {
        // RFC 4954 section 6: "501 5.7.0 Client initiated Authentication Exchange".
        throw new StepError({
          kind: "initial-response-not-allowed",
          reason: `${this.mechanism} does not allow an initial response`,
        });
      }
      return this.respond(decodeInitialResponse(initialResponse));
    });
  }

  next(line: string): SaslStep {
    if (this.phase !== "running") {
      throw new Error(`${this.mechanism} exchange is ${this.phase === "new" ? "not started" : "over"}`);
    }
    return this.run(() => this.respond(decodeLine(line)));
  }

  /** False for mechanisms where the server speaks first (CRAM-MD5). */
  protected readonly allowsInitialResponse: boolean = true;
  /** No initial response: the first challenge. */
  protected abstract begin(): SaslStep;
  /** A decoded client response (the initial one or a line after a challenge). */
  protected abstract respond(response: Buffer): SaslStep;

  private run(step: () => SaslStep): SaslStep {
    let result: SaslStep;
    try {
      result = step();
    } catch (error) {
      if (!(error instanceof StepError)) throw error;
      result = { kind: "failed", failure: error.failure };
    }
    if (result.kind !== "challenge") this.phase = "done";
    return result;
  }
}

const challenge = (text: string): SaslStep => ({ kind: "challenge", text });
const done = (credentials: SaslCredentials): SaslStep => ({ kind: "credentials", credentials });

/** RFC 4616: message = [authzid] NUL authcid NUL passwd; authcid and passwd non-empty. */
class PlainExchange extends Exchange {
  readonly mechanism = "PLAIN";

  protected begin(): SaslStep {
    return challenge("");
  }

  protected respond(response: Buffer): SaslStep {
    const parts = utf8(response).split("\0");
    if (parts.length !== 3) {
      throw new StepError(malformed("PLAIN response must be authzid NUL authcid NUL password"));
    }
    const [authzid, authcid, password] = parts as [string, string, string];
    if (authcid === "" || password === "") {
      throw new StepError(malformed("PLAIN user name and password must not be empty"));
    }
    checkIdentity(authzid);
    checkIdentity(authcid);
    return done(passwordCredentials("PLAIN", authzid, authcid, password));
  }
}

const USERNAME_CHALLENGE = encodeBase64("Username:");
const PASSWORD_CHALLENGE = encodeBase64("Password:");

/** draft-murchison-sasl-login: "Username:", then "Password:"; the user name may come with AUTH. */
class LoginExchange extends Exchange {
  readonly mechanism = "LOGIN";
  private user: string | undefined;

  protected begin(): SaslStep {
    return challenge(USERNAME_CHALLENGE);
  }

  protected respond(response: Buffer): SaslStep {
    const text = utf8(response);
    if (this.user === undefined) {
      if (text === "") throw new StepError(malformed("LOGIN user name must not be empty"));
      checkIdentity(text);
      this.user = text;
      return challenge(PASSWORD_CHALLENGE);
    }
    if (text === "") throw new StepError(malformed("LOGIN password must not be empty"));
    if (text.includes("\0")) throw new StepError(malformed("NUL in LOGIN password"));
    return done(passwordCredentials("LOGIN", "", this.user, text));
  }
}

const HEX_DIGEST = /^[0-9a-f]{32}$/i;

/** RFC 2195: challenge "<random.timestamp@host>", response "user SP hex(HMAC-MD5(password, challenge))". */
class CramMd5Exchange extends Exchange {
  readonly mechanism = "CRAM-MD5";
  protected override readonly allowsInitialResponse = false;
  private readonly challenge: string;

  constructor(hostname: string) {
    super();
    this.challenge = `<${randomBytes(8).readBigUInt64BE()}.${Date.now()}@${hostname}>`;
  }

  protected begin(): SaslStep {
    return challenge(encodeBase64(this.challenge));
  }

  protected respond(response: Buffer): SaslStep {
    const text = utf8(response);
    // The digest is the last word: a user name may hold spaces.
    const space = text.lastIndexOf(" ");
    const user = text.slice(0, space);
    const digest = text.slice(space + 1);
    if (space <= 0 || !HEX_DIGEST.test(digest)) {
      throw new StepError(malformed("CRAM-MD5 response must be user name SP 32 hex digits"));
    }
    checkIdentity(user);
    const clientDigest = Buffer.from(digest, "hex");
    const challengeText = this.challenge;
    const credentials = new Credentials("CRAM-MD5", "", user, digest.toLowerCase());
    credentials.challenge = challengeText;
    credentials.verifyPassword = (password) =>
      timingSafeEqual(
        createHmac("md5", Buffer.from(password, "utf8")).update(challengeText).digest(),
        clientDigest,
      );
    return done(credentials);
  }
}

/** Printable ASCII without space: RFC 6750's b64token is a subset; anything else is no token. */
const BEARER_TOKEN = /^[\x21-\x7e]+$/;
const BEARER_SCHEME = /^bearer /i;

/**
 * Google's XOAUTH2: base64("user=" user ^A "auth=Bearer " token ^A ^A). The client sends it as the
 * initial response or after an empty challenge.
 */
class XOAuth2Exchange extends Exchange {
  readonly mechanism = "XOAUTH2";

  protected begin(): SaslStep {
    return challenge("");
  }

  protected respond(response: Buffer): SaslStep {
    const bad = () => new StepError(malformed("XOAUTH2 response must be user=name^Aauth=Bearer token^A^A"));
    const fields = utf8(response).split("\x01");
    // "a^Ab^A^A" splits into [a, b, "", ""].
    if (fields.length !== 4 || fields[2] !== "" || fields[3] !== "") throw bad();
    let user: string | undefined;
    let auth: string | undefined;
    for (const field of fields.slice(0, 2)) {
      if (field.startsWith("user=") && user === undefined) user = field.slice(5);
      else if (field.startsWith("auth=") && auth === undefined) auth = field.slice(5);
      else throw bad();
    }
    if (user === undefined || auth === undefined || user === "" || !BEARER_SCHEME.test(auth)) throw bad();
    const token = auth.slice(7);
    if (!BEARER_TOKEN.test(token)) throw bad();
    checkIdentity(user);
    return done(new Credentials("XOAUTH2", "", user, token));
  }
}

/**
 * A new exchange for `mechanism`. Throws TypeError for a name that is not a SaslMechanismName (check
 * with isSaslMechanismName first; the client gets unrecognizedMechanism()).
 */
export function createExchange(mechanism: SaslMechanismName, options: SaslExchangeOptions): SaslExchange {
  switch (mechanism) {
    case "PLAIN":
      return new PlainExchange();
    case "LOGIN":
      return new LoginExchange();
    case "CRAM-MD5":
      return new CramMd5Exchange(options.hostname);
    case "XOAUTH2":
      return new XOAuth2Exchange();
    default:
      throw new TypeError(`Unknown SASL mechanism ${JSON.stringify(mechanism)}`);
  }
}
