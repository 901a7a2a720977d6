/**
 * The fuzz invariant on what a session writes: every reply is well-formed on the wire (RFC 5321 4.2 and
 * 4.5.3.1.5), so no client input can make a reply that a client would parse otherwise.
 */
import { invariant } from "./finding.js";

/** RFC 5321 4.5.3.1.5: a reply line is at most 512 octets, CRLF included. */
export const MAX_REPLY_LINE_OCTETS = 512;

/** Reply-code = %x32-35 %x30-35 %x30-39, then SP or "-" and the text, or nothing (RFC 5321 4.2). */
const REPLY_LINE = /^([2-5][0-5][0-9])(?:([ -])(.*))?$/s;

/** textstring (RFC 5321 4.2) = 1*(HT / %d32-126); UTF-8 beyond ASCII is tolerated (SMTPUTF8 texts). */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09) || code === 0x7f) return true;
  }
  return false;
}

/**
 * Checks one write of a session: whole replies only (a write ends where a reply ends), each line a code,
 * a separator and text, CRLF-terminated, within 512 octets, and the lines of a multi-line reply sharing
 * their code. Returns the replies' codes, one per reply, in order.
 */
export function checkReplies(written: string): number[] {
  invariant(written.endsWith("\r\n"), () => `a write does not end with CRLF: ${JSON.stringify(written)}`);
  const codes: number[] = [];
  let open: string | null = null; // the code of a multi-line reply still running
  for (const line of written.slice(0, -2).split("\r\n")) {
    const octets = Buffer.byteLength(line, "utf8") + 2;
    invariant(
      octets <= MAX_REPLY_LINE_OCTETS,
      () => `a reply line of ${octets} octets: ${line.slice(0, 80)}…`,
    );
    const match = REPLY_LINE.exec(line);
    invariant(match, () => `a malformed reply line: ${JSON.stringify(line)}`);
    const [, code = "", separator, text = ""] = match;
    invariant(!hasControlCharacter(text), () => `a control character in a reply: ${JSON.stringify(line)}`);
    invariant(open === null || open === code, () => `a multi-line reply changes code: ${open} then ${code}`);
    if (separator === "-") {
      open = code;
    } else {
      open = null;
      codes.push(Number(code));
    }
  }
  invariant(open === null, () => `a write ends inside a multi-line reply: ${JSON.stringify(written)}`);
  return codes;
}
