/**
 * The Received header a server adds to each message it accepts: the trace line of RFC 5321 4.4, with the
 * protocol keywords of RFC 3848 and RFC 6531 3.7.3.
 *
 *   Received: from <HELO> (<reverse name> [<address>])
 *   	by <hostname> (mailgate) with <protocol> id <id>
 *   	for <recipient>
 *   	(version=<TLS version> cipher=<cipher>);
 *   	<RFC 5322 date-time>
 *
 * The HELO and the recipient are the client's text, the reverse name is the DNS's (or a trusted XCLIENT's):
 * none of them may imitate the header's structure (a "(... [address])" comment naming another origin, a
 * ";" before a false date, a quoted string, an angle address), carry control characters (RFC 5322 3.2.3
 * forbids them; ESC, BS and DEL act on the terminal that shows the header), or make a line longer than
 * RFC 5322 2.1.1 allows. The rules are below, where each part is written.
 */
import { isIP } from "node:net";
import { isAddressLiteral, MAX_DOMAIN_OCTETS, MAX_PATH_OCTETS } from "./commands.js";
import type { SessionContext } from "./context.js";

export interface ReceivedOptions {
  /** Our name, for the by clause: the server's `hostname` setting. */
  hostname: string;
  /** This server's id of the message, for the id clause (left out when not given). */
  id?: string;
  /** The time stamp after the ";" (default: now). */
  date?: Date;
}

// A word the client (or the DNS) chose keeps only atext (RFC 5322 3.2.3) and dots: then it is a single
// token that cannot open a comment "(", a domain literal "[", a quoted string or an angle address, cannot
// end the clauses with ";" (the date follows the last one), and cannot fold the line. Every other
// character (a special, a space, a control, anything non-ASCII) becomes "?". Postfix does the same to the
// HELO name it records (smtpd.c: printable() with "?", then neuter() of " <>()\\\";@"); this keeps less:
// "[", "]", ":" and "," too, brackets being kept only when the whole word is a valid address literal. The
// replacement is lossy on purpose: the client's exact text is in ctx.server.helo and the logs, and a trace
// header is read by people and filters that must not be misled, not by programs that need the bytes.
const NOT_ATEXT_OR_DOT = /[^A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]/gu;

/** `text` as one atom-like word (or an address literal), cut to the 255 octets a domain may have. */
function word(text: string): string {
  if (text === "") return "unknown";
  if (isAddressLiteral(text)) return text;
  const shown = text.replace(NOT_ATEXT_OR_DOT, "?");
  return shown.length > MAX_DOMAIN_OCTETS ? `${shown.slice(0, MAX_DOMAIN_OCTETS - 3)}...` : shown;
}

/** RFC 5321 4.1.3 address literal of the client's address; a value that is no address becomes a word. */
function addressLiteral(ip: string): string {
  const version = isIP(ip);
  return version === 6 ? `[IPv6:${ip}]` : version === 4 ? `[${ip}]` : word(ip);
}

// The for clause names a recipient only when its address is plain: a dot-atom local part (RFC 5322 3.2.3)
// and a host name or address literal, non-ASCII allowed only in an SMTPUTF8 transaction and never a control,
// format (bidi override), private-use, unassigned or separator character. Anything else, a quoted local part
// above all, which may hold "(", ")", ";", "<", ">" and spaces, leaves the clause out: RFC 5321 4.4 makes it
// optional, and Postfix writes it only for one recipient anyway. Rewriting the address would name a
// recipient that does not exist.
const PLAIN_LOCAL = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]+$/;
const PLAIN_LOCAL_UTF8 = /^(?:[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]|[^\p{ASCII}\p{C}\p{Z}])+$/u;
const PLAIN_DOMAIN = /^[A-Za-z0-9._-]+$/;
const PLAIN_DOMAIN_UTF8 = /^(?:[A-Za-z0-9._-]|[^\p{ASCII}\p{C}\p{Z}])+$/u;

function isPlainAddress(address: string, utf8: boolean): boolean {
  if (Buffer.byteLength(address) > MAX_PATH_OCTETS - 2) return false;
  if (address.toLowerCase() === "postmaster") return true;
  const at = address.lastIndexOf("@");
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (at <= 0 || domain === "") return false;
  return (
    (utf8 ? PLAIN_LOCAL_UTF8 : PLAIN_LOCAL).test(local) &&
    (isAddressLiteral(domain) || (utf8 ? PLAIN_DOMAIN_UTF8 : PLAIN_DOMAIN).test(domain))
  );
}

/** The last date-time written and its second: every message of the same second has the same one. */
let lastDate = { second: Number.NaN, text: "" };

/** RFC 5322 3.3 date-time, e.g. "Sun, 22 Nov 2026 03:55:00 +0000". */
function rfc5322Date(date: Date): string {
  const second = Math.floor(date.getTime() / 1000);
  if (second !== lastDate.second) lastDate = { second, text: date.toUTCString().replace("GMT", "+0000") };
  return lastDate.text;
}

// RFC 5322 2.1.1: lines SHOULD stay within 78 characters and MUST within 998. Each clause starts a line of
// its own, as mailgate always wrote it; a clause longer than 78 characters is folded between its words,
// never inside one (a word is at most 255 octets, an address 256, so no line nears 998).
const FOLD_AT = 78;

/**
 * The header's text, clause by clause: each clause starts a line of its own, and a clause longer than
 * FOLD_AT is folded between its words. A word is held until the next one comes, so that the last may still
 * take the ";" that ends the clauses before the date.
 */
class FoldedHeader {
  /** Lines done, each ended by its line break (and, before a new clause, that clause's tab). */
  private text = "";
  /** The line being filled; "" before the first word. */
  private line = "";
  /** The word not placed yet, and whether it starts a clause. */
  private held = "";
  private heldStartsClause = false;

  /** Starts a clause with `first`. */
  clause(first: string): void {
    this.place();
    this.held = first;
    this.heldStartsClause = true;
  }

  /** Adds a word to the clause under way. */
  word(next: string): void {
    this.place();
    this.held = next;
    this.heldStartsClause = false;
  }

  /** Appends `suffix` to the last word given (the ";" before the date). */
  endWord(suffix: string): void {
    this.held += suffix;
  }

  /** The header, CRLF-ended. */
  done(): string {
    this.place();
    return `${this.text}${this.line}\r\n`;
  }

  private place(): void {
    const piece = this.held;
    if (piece === "") return;
    this.held = "";
    if (this.line === "") this.line = piece;
    else if (this.heldStartsClause) {
      this.text += `${this.line}\r\n\t`;
      this.line = piece;
    } else if (this.line.length + 1 + piece.length <= FOLD_AT) this.line += ` ${piece}`;
    else {
      this.text += `${this.line}\r\n`;
      this.line = `\t${piece}`;
    }
  }
}

/**
 * The Received header for the message of `ctx`, folded and ending with CRLF: call it from
 * onMessageDataStart and hand it to ctx.message.write(), so that it comes before the client's headers.
 * The HELO, the reverse name, `hostname` and `id` are written as single atoms (characters other than atext
 * and "." become "?"; an address literal stays as it is), and the recipient only when its address is plain,
 * so no client text can imitate the header's structure or put a control character in it.
 *
 * @example
 * onMessageDataStart(ctx) {
 *   ctx.message.write(receivedHeader(ctx, { hostname: "mx.example.com", id: queueId }));
 * }
 */
export function receivedHeader(ctx: SessionContext, options: ReceivedOptions): string {
  const { server, envelope } = ctx;
  const utf8 = envelope.encodingUtf8 === "utf8";
  const base = server.heloCommand === "HELO" ? "SMTP" : server.heloCommand === "LHLO" ? "LMTP" : "ESMTP";
  // RFC 3848: S for TLS, A for an authenticated client (ESMTPSA); RFC 6531 3.7.3: UTF8SMTP, UTF8LMTP...
  const suffix = `${server.encrypted ? "S" : ""}${server.authenticated ? "A" : ""}`;
  const protocol = `${utf8 ? (base === "LMTP" ? "UTF8LMTP" : "UTF8SMTP") : base}${suffix}`;

  const header = new FoldedHeader();
  header.clause(`Received: from ${word(server.helo)}`);
  // TCP-info: "[address]" when the address is all we know, "name [address]" otherwise; a UNIX socket peer
  // has no address and is named localhost.
  if (server.remoteIp === "") {
    header.word(`(${word(server.remoteHost)})`);
  } else if (server.remoteHost !== server.remoteIp && server.remoteHost !== "") {
    header.word(`(${word(server.remoteHost)}`);
    header.word(`${addressLiteral(server.remoteIp)})`);
  } else {
    header.word(`(${addressLiteral(server.remoteIp)})`);
  }
  header.clause(`by ${word(options.hostname)}`);
  header.word("(mailgate)");
  header.word(`with ${protocol}`);
  if (options.id) header.word(`id ${word(options.id)}`);
  const recipient = envelope.to.length === 1 ? (envelope.to[0] as string) : "";
  if (recipient !== "" && isPlainAddress(recipient, utf8)) header.clause(`for <${recipient}>`);
  if (server.tls) {
    header.clause(`(version=${word(server.tls.protocol)}`);
    header.word(`cipher=${word(server.tls.cipher)})`);
  }
  header.endWord(";");
  header.clause(rfc5322Date(options.date ?? new Date()));
  return header.done();
}
