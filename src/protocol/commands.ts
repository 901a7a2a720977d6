/**
 * Parsing of one command line (RFC 5321 4.1): the verb, MAIL/RCPT paths (4.1.2) and ESMTP parameters
 * (4.1.2 Mail-parameters), with the limits of 4.5.3.1 and the UTF-8 rules of RFC 6531.
 * Errors are thrown as SmtpError values carrying the reply the client gets.
 */
import { isUtf8 } from "node:buffer";
import { isIP } from "node:net";
import { SmtpError } from "./errors.js";

/** RFC 5321 4.5.3.1: limits on the parts of a path, in octets. */
export const MAX_LOCAL_PART_OCTETS = 64;
export const MAX_DOMAIN_OCTETS = 255;
export const MAX_PATH_OCTETS = 256;

export interface CommandLine {
  /** The verb in upper case ("MAIL"); "" for an empty line. */
  verb: string;
  /** Everything after the verb and the spaces that follow it. */
  args: string;
  /** The line as text (for logs and the unknown-command hook). */
  text: string;
  /** True when the line holds bytes above 0x7f (valid UTF-8; invalid UTF-8 is refused earlier). */
  nonAscii: boolean;
}

export type EsmtpParams = Record<string, string | true>;

export interface PathArgument {
  /** The mailbox without angle brackets and without a source route; "" for the null path <>. */
  address: string;
  /** ESMTP parameters by upper-case keyword; a keyword without "=value" maps to true. */
  params: EsmtpParams;
}

const NUL = 0;
const CR = 13;

/**
 * Decodes a command line (its terminator already removed): the bytes of `input` from `start` to `end`.
 * Refuses NUL and CR anywhere in it rather than truncating or stripping them (a CR inside MAIL FROM is a
 * header-injection attempt), and refuses invalid UTF-8.
 */
export function decodeCommandLine(input: Buffer, start = 0, end = input.length): CommandLine {
  // One pass over the bytes (command lines are short): NUL and CR refused wherever they are, before the
  // UTF-8 check, and whether any byte is above 0x7f.
  let nonAscii = false;
  for (let i = start; i < end; i++) {
    const byte = input[i] as number;
    if (byte === NUL || byte === CR) {
      throw new SmtpError(501, "Syntax error: NUL or bare CR in command", "5.5.2");
    }
    if (byte > 0x7f) nonAscii = true;
  }
  let text: string;
  if (!nonAscii) {
    text = input.toString("latin1", start, end);
  } else if (isUtf8(input.subarray(start, end))) {
    text = input.toString("utf8", start, end);
  } else {
    throw new SmtpError(500, "Syntax error: invalid UTF-8 in command", "5.5.2");
  }
  // RFC 5321 4.1.1: trailing white space before the CRLF is tolerated; VT and FF count as white space,
  // as in Postfix's tokenizer (isspace), so that "DATA<VT>" is DATA to both of us.
  // White space before the verb is skipped too, as Postfix's tokenizer does: " BDAT 6" must be BDAT to
  // both of us, or a front end framing it as a chunk would have us run the chunk as commands.
  let first = 0;
  let last = text.length;
  while (last > 0 && isWhiteSpace(text.charCodeAt(last - 1))) last--;
  while (first < last && isWhiteSpace(text.charCodeAt(first))) first++;
  if (first > 0 || last < text.length) text = text.slice(first, last);
  // The verb ends at white space, as in Postfix: "BDAT<TAB>59" must be a BDAT whose size cannot be read
  // (its arguments are separated by spaces only: the session closes), not an unknown command whose chunk
  // then runs as commands.
  let verbEnd = 0;
  while (verbEnd < text.length && !isWhiteSpace(text.charCodeAt(verbEnd))) verbEnd++;
  const verb = (verbEnd === text.length ? text : text.slice(0, verbEnd)).toUpperCase();
  let argsStart = verbEnd;
  while (text.charCodeAt(argsStart) === 32) argsStart++;
  return { verb, args: text.slice(argsStart), text, nonAscii };
}

/** SP, HTAB, VT, FF: ASCII white space within a line. */
function isWhiteSpace(code: number): boolean {
  return code === 32 || code === 9 || code === 11 || code === 12;
}

/** Parses the arguments of MAIL ("FROM:<path> params") or RCPT ("TO:<path> params"). */
export function parsePathArgument(args: string, keyword: "FROM:" | "TO:", allowUtf8: boolean): PathArgument {
  if (!startsWithIgnoringCase(args, keyword)) {
    throw new SmtpError(
      501,
      `Syntax: ${keyword === "FROM:" ? "MAIL FROM:<address>" : "RCPT TO:<address>"}`,
      "5.5.4",
    );
  }
  // RFC 3463: X.1.7 is a bad sender's address, X.1.3 a bad destination's.
  const badSyntax = keyword === "FROM:" ? "5.1.7" : "5.1.3";
  let pos = keyword.length;
  // RFC 5321 has no space after the colon, but many clients send one; Postfix accepts it too.
  while (args.charCodeAt(pos) === 32) pos++;

  let inner: string;
  if (args.charCodeAt(pos) === 0x3c /* < */) {
    const close = findClosingBracket(args, pos + 1);
    if (close === -1) throw new SmtpError(501, "Syntax error in address: missing >", badSyntax);
    inner = args.slice(pos + 1, close);
    pos = close + 1;
  } else {
    // A bare address without brackets: tolerated as most servers do, up to the first space.
    const space = args.indexOf(" ", pos);
    const end = space === -1 ? args.length : space;
    inner = args.slice(pos, end);
    pos = end;
    if (inner === "") throw new SmtpError(501, "Syntax error: missing address", badSyntax);
  }

  const address = parseMailbox(stripSourceRoute(inner, badSyntax), keyword === "FROM:", allowUtf8);
  const rest = args.slice(pos);
  if (rest !== "" && rest.charCodeAt(0) !== 32) {
    throw new SmtpError(501, "Syntax error: parameters must follow the address after a space", "5.5.4");
  }
  return { address, params: parseEsmtpParams(rest) };
}

/** True when `text` starts with `prefix` (upper-case ASCII), in any case. */
function startsWithIgnoringCase(text: string, prefix: string): boolean {
  if (text.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    const c = text.charCodeAt(i);
    // ASCII letters fold to upper case by clearing 0x20; other characters must match exactly.
    const upper = c >= 0x61 && c <= 0x7a ? c - 0x20 : c;
    if (upper !== prefix.charCodeAt(i)) return false;
  }
  return true;
}

/** Finds the ">" that closes a path, skipping quoted strings (a quoted local part may hold ">"). */
function findClosingBracket(s: string, from: number): number {
  let quoted = false;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (quoted) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) quoted = false;
    } else if (c === 0x22) {
      quoted = true;
    } else if (c === 0x3e /* > */) {
      return i;
    }
  }
  return -1;
}

/** RFC 5321 4.1.2: a source route ("@a,@b:") MUST be accepted and SHOULD be ignored. */
function stripSourceRoute(path: string, badSyntax: string): string {
  if (path.charCodeAt(0) !== 0x40 /* @ */) return path;
  const colon = path.indexOf(":");
  if (colon === -1) throw new SmtpError(501, "Syntax error in source route", badSyntax);
  return path.slice(colon + 1);
}

/** Characters refused in SMTPUTF8 addresses: controls (C0 and C1), line/paragraph separators, bidi controls. */
const HAZARDOUS_IN_ADDRESS = /[\p{Cc}\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
const ATEXT_UTF8 = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10ffff}]+$/u;
const QUOTED = /^"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"$/;
const QUOTED_UTF8 = /^"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\u{10ffff}]|\\[\x20-\x7e])*"$/u;
// Let-dig [Ldh-str] with UTF-8 letters; "_" is tolerated because real host names carry it.
const LABEL_UTF8 =
  /^[A-Za-z0-9_\u0080-\u{10ffff}](?:[A-Za-z0-9_\-\u0080-\u{10ffff}]*[A-Za-z0-9_\u0080-\u{10ffff}])?$/u;

function parseMailbox(mailbox: string, isReversePath: boolean, allowUtf8: boolean): string {
  // RFC 3463: X.1.7 / X.1.8 for the sender's mailbox / system, X.1.3 / X.1.2 for a destination's.
  const badSyntax = isReversePath ? "5.1.7" : "5.1.3";
  if (mailbox === "") {
    if (isReversePath) return "";
    throw new SmtpError(501, "Syntax error: empty recipient", "5.1.3");
  }
  const kind = textKind(mailbox);
  if (octets(mailbox, kind) > MAX_PATH_OCTETS - 2) {
    throw new SmtpError(501, `Path too long (more than ${MAX_PATH_OCTETS} octets)`, badSyntax);
  }
  if (!allowUtf8 && kind === TextKind.NonAscii) {
    // RFC 6531 3.5: an internationalized address needs SMTPUTF8 on MAIL FROM.
    throw new SmtpError(553, "Non-ASCII address requires the SMTPUTF8 parameter", "5.6.7");
  }
  if (allowUtf8 && kind !== TextKind.Printable && HAZARDOUS_IN_ADDRESS.test(mailbox)) {
    // Valid UTF-8 but never part of a real address, and dangerous wherever the address is written: a C1
    // control (U+009B is a terminal's CSI, U+0085 a line break to some readers), a line or paragraph
    // separator (a header line break to JavaScript and Python), a bidirectional control (hides text).
    throw new SmtpError(501, "Syntax error: control or separator character in the address", badSyntax);
  }
  // RFC 5321 4.1.1.3: "Postmaster" without a domain is a valid recipient.
  if (!isReversePath && mailbox.length === 10 && mailbox.toLowerCase() === "postmaster") return mailbox;

  const at = mailbox.lastIndexOf("@");
  if (at <= 0 || at === mailbox.length - 1) {
    throw new SmtpError(501, "Syntax error in mailbox: expected local-part@domain", badSyntax);
  }
  const localPart = mailbox.slice(0, at);
  const domain = mailbox.slice(at + 1);
  if (octets(localPart, kind) > MAX_LOCAL_PART_OCTETS) {
    throw new SmtpError(501, `Local part too long (more than ${MAX_LOCAL_PART_OCTETS} octets)`, badSyntax);
  }
  if (!isValidLocalPart(localPart, allowUtf8, kind)) {
    throw new SmtpError(501, "Syntax error in the local part of the mailbox", badSyntax);
  }
  if (!isValidDomain(domain, kind)) {
    throw new SmtpError(501, "Syntax error in the domain of the mailbox", isReversePath ? "5.1.8" : "5.1.2");
  }
  return mailbox;
}

/** What characters a text holds, found in one pass: the common case (printable ASCII) takes no regex. */
enum TextKind {
  /** Only printable ASCII (0x20-0x7e). */
  Printable = 0,
  /** ASCII with a control character (C0 or DEL). */
  AsciiControl = 1,
  /** A character above 0x7f. */
  NonAscii = 2,
}

function textKind(text: string): TextKind {
  let kind = TextKind.Printable;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) return TextKind.NonAscii;
    if (c < 0x20 || c === 0x7f) kind = TextKind.AsciiControl;
  }
  return kind;
}

/** The UTF-8 length of `text` (a part of a text of that kind: ASCII text is one octet per character). */
function octets(text: string, kind: TextKind): number {
  return kind === TextKind.NonAscii ? Buffer.byteLength(text) : text.length;
}

/** A lookup table of the ASCII characters in `chars`, by character code. */
function asciiTable(chars: string): Uint8Array {
  const table = new Uint8Array(128);
  for (let i = 0; i < chars.length; i++) table[chars.charCodeAt(i)] = 1;
  return table;
}

const LETTERS_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/** RFC 5322 atext, the ASCII part of ATEXT_UTF8. */
const ATEXT_CHARS = asciiTable(`${LETTERS_DIGITS}!#$%&'*+-/=?^_\`{|}~`);
/** What a domain label may hold (the ASCII part of LABEL_UTF8): letters, digits, "_" and, not at either end, "-". */
const LABEL_CHARS = asciiTable(`${LETTERS_DIGITS}_-`);
const DOT = 0x2e;
const HYPHEN = 0x2d;

/** An ASCII dot-atom: atoms of atext, none empty (what splitting on dots and testing ATEXT_UTF8 accepts). */
function isAsciiDotAtom(text: string): boolean {
  let atom = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === DOT) {
      if (atom === 0) return false;
      atom = 0;
    } else if (c < 128 && ATEXT_CHARS[c] === 1) {
      atom++;
    } else {
      return false;
    }
  }
  return atom > 0;
}

/** An ASCII domain name: labels of LABEL_CHARS, none empty (what splitting on dots and testing LABEL_UTF8 accepts). */
function isAsciiDomainName(text: string): boolean {
  let label = 0;
  let previous = DOT;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === DOT) {
      if (label === 0 || previous === HYPHEN) return false;
      label = 0;
    } else if (c < 128 && LABEL_CHARS[c] === 1 && !(c === HYPHEN && label === 0)) {
      label++;
    } else {
      return false;
    }
    previous = c;
  }
  return label > 0 && previous !== HYPHEN;
}

function isValidLocalPart(localPart: string, allowUtf8: boolean, kind: TextKind): boolean {
  if (localPart.charCodeAt(0) === 0x22) return (allowUtf8 ? QUOTED_UTF8 : QUOTED).test(localPart);
  if (kind !== TextKind.NonAscii) return isAsciiDotAtom(localPart);
  // Non-ASCII text comes only with allowUtf8: parseMailbox refuses it otherwise.
  return localPart.split(".").every((atom) => ATEXT_UTF8.test(atom));
}

function isValidDomain(domain: string, kind: TextKind): boolean {
  if (octets(domain, kind) > MAX_DOMAIN_OCTETS) return false;
  if (domain.charCodeAt(0) === 0x5b /* [ */) return isAddressLiteral(domain);
  if (kind !== TextKind.NonAscii) return isAsciiDomainName(domain);
  // Non-ASCII text comes only with allowUtf8: parseMailbox refuses it otherwise.
  return domain.split(".").every((part) => LABEL_UTF8.test(part));
}

/**
 * RFC 5321 4.1.3: "[192.0.2.1]" or "[IPv6:2001:db8::1]" (the tag in any case, as ABNF strings are). No
 * General-address-literal: no other tag is registered. No zone index ("%eth0"): node:net's isIP allows
 * one, the RFC's IPv6-addr does not.
 */
export function isAddressLiteral(text: string): boolean {
  if (text.charCodeAt(0) !== 0x5b /* [ */ || text.charCodeAt(text.length - 1) !== 0x5d /* ] */) return false;
  const literal = text.slice(1, -1);
  if (literal.slice(0, 5).toUpperCase() === "IPV6:") {
    const address = literal.slice(5);
    return !address.includes("%") && isIP(address) === 6;
  }
  return isIP(literal) === 4;
}

/** True when every character is 7-bit (addresses need SMTPUTF8 otherwise). */
export function isAsciiText(text: string): boolean {
  return textKind(text) !== TextKind.NonAscii;
}

const PARAM_KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
const PARAM_VALUE = /^[\x21-\x3c\x3e-\x7e]+$/;

/** RFC 5321 4.1.2: esmtp-param = esmtp-keyword ["=" esmtp-value], separated by spaces. */
export function parseEsmtpParams(text: string): EsmtpParams {
  const params: EsmtpParams = Object.create(null);
  if (text === "") return params;
  for (const item of text.split(" ")) {
    if (item === "") continue;
    const eq = item.indexOf("=");
    const keyword = (eq === -1 ? item : item.slice(0, eq)).toUpperCase();
    const value = eq === -1 ? true : item.slice(eq + 1);
    if (!PARAM_KEYWORD.test(keyword) || (value !== true && !PARAM_VALUE.test(value))) {
      // The reply echoes the client's text: keep it printable ASCII (RFC 5321 4.2 textstring), so no
      // control character, U+2028 or half of a surrogate pair reaches the client.
      const shown = item.slice(0, 40).replace(/[^\x20-\x7e]/g, "?");
      throw new SmtpError(501, `Syntax error in parameter "${shown}"`, "5.5.4");
    }
    if (keyword in params) throw new SmtpError(501, `Duplicate parameter ${keyword}`, "5.5.4");
    params[keyword] = value;
  }
  return params;
}

/**
 * Decodes xtext (RFC 3461 4): "+" and two upper-case hex digits stand for one octet. The decoded value
 * must be printable (no CR, LF or other controls that could be smuggled into a DSN or a header) and
 * valid UTF-8, and at most `maxLength` octets.
 */
export function decodeXtext(value: string | true, parameter: string, maxLength: number): string {
  const invalid = () => new SmtpError(501, `Error: invalid ${parameter} value`, "5.5.4");
  if (typeof value !== "string" || value === "") throw invalid();
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x2b /* + */) {
      const hex = value.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) throw invalid();
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (c >= 0x21 && c <= 0x7e && c !== 0x3d /* = */) {
      bytes.push(c);
    } else {
      throw invalid();
    }
  }
  const decoded = Buffer.from(bytes);
  if (decoded.length > maxLength || !isUtf8(decoded) || bytes.some((b) => b < 0x20 || b === 0x7f))
    throw invalid();
  return decoded.toString("utf8");
}
