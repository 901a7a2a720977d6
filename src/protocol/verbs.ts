/**
 * The verbs the session knows, grouped by what they mean for the dialogue (RFC 2920 groups, commands we
 * do not offer, web clients on the wrong port), and what a command line that cannot be read still says.
 */
import { MAX_SASL_LINE_OCTETS } from "../sasl/mechanism.js";
import { SmtpError } from "./errors.js";

/** The verbs the session handles itself. */
export const KNOWN_VERBS: ReadonlySet<string> = new Set([
  "XCLIENT",
  "XFORWARD",
  "AUTH",
  "STARTTLS",
  "BDAT",
  "EHLO",
  "HELO",
  "LHLO",
  "MAIL",
  "RCPT",
  "DATA",
  "RSET",
  "NOOP",
  "QUIT",
  "HELP",
  "VRFY",
  "EXPN",
]);

/**
 * RFC 2920 3.1: commands whose reply the client must see before it sends anything else. QUIT also ends a
 * group, but RFC 5321 4.1.1.10 wants its 221 whatever follows: it is answered, and nothing after it runs.
 */
export const GROUP_ENDERS: ReadonlySet<string> = new Set([
  "EHLO",
  "HELO",
  "LHLO",
  "DATA",
  "VRFY",
  "EXPN",
  "NOOP",
  "TURN",
]);
/** Known SMTP verbs we do not offer: 502 rather than the unknown-command path. */
export const NOT_IMPLEMENTED: ReadonlySet<string> = new Set(["TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML"]);
/** A web client talking to the SMTP port: no point in a dialogue. */
export const HTTP_VERBS: ReadonlySet<string> = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "OPTIONS",
  "CONNECT",
  "PATCH",
]);
/** Replies that count as a bad command (maxBadCommands). */
export const BAD_COMMAND_CODES: ReadonlySet<number> = new Set([500, 501, 502, 503, 504, 555]);

/**
 * The longest command line allowed at `start`, CRLF included: `max`, except for AUTH, whose initial
 * response may make the line 12,288 octets long (RFC 4954 4; XOAUTH2 tokens need it).
 */
export function commandLineLimit(input: Buffer, start: number, max: number, authOffered: boolean): number {
  if (!authOffered || input.length - start < 5) return max;
  // "AUTH " in any case: bit 0x20 folds the letters.
  const isAuth =
    ((input[start] as number) | 0x20) === 0x61 &&
    ((input[start + 1] as number) | 0x20) === 0x75 &&
    ((input[start + 2] as number) | 0x20) === 0x74 &&
    ((input[start + 3] as number) | 0x20) === 0x68 &&
    input[start + 4] === 0x20;
  return isAuth ? Math.max(max, MAX_SASL_LINE_OCTETS + 2) : max;
}

/**
 * A BDAT or DATA line that cannot even be decoded (NUL, CR, invalid UTF-8) still announced message octets
 * whose framing a front end may read otherwise (Postfix takes CR for white space): the 521 that ends the
 * session. `error` (the decoder's) for any other line.
 */
export function undecodableLineError(input: Buffer, start: number, end: number, error: unknown): unknown {
  const verb = dataVerbOf(input, start, end);
  if (verb === "") return error;
  return new SmtpError(
    521,
    verb === "BDAT" ? "Syntax: BDAT size [LAST]" : "Syntax error: unreadable DATA command",
    "5.5.4",
  );
}

/**
 * "BDAT" or "DATA" (any case) when the line (up to `end`) starts with one of them as a word, after white
 * space or CR; "" otherwise.
 */
function dataVerbOf(input: Buffer, start: number, end: number): "BDAT" | "DATA" | "" {
  const isSpace = (byte: number | undefined) =>
    byte === 32 || byte === 9 || byte === 11 || byte === 12 || byte === 13;
  let at = start;
  while (at < end && isSpace(input[at])) at++;
  const word = input.toString("latin1", at, at + 4).toUpperCase();
  const whole = at + 4 >= end || isSpace(input[at + 4]);
  return (word === "BDAT" || word === "DATA") && whole ? word : "";
}
