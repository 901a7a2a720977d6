/**
 * SMTP replies: codes, enhanced status codes (RFC 3463, announced by ENHANCEDSTATUSCODES, RFC 2034)
 * and their rendering on the wire (RFC 5321 4.2: multi-line replies use "code-" on all but the last line).
 */

export const CRLF = "\r\n";

/** The standard replies of the seed's Smtpd???Exception classes, by code, with an enhanced code. */
export const STANDARD_REPLIES: Readonly<Record<number, readonly [enhanced: string, text: string]>> = {
  421: ["4.3.2", "Service not available, closing transmission channel"],
  450: ["4.2.0", "Requested mail action not taken: mailbox unavailable"],
  451: ["4.3.0", "Requested action aborted: local error in processing"],
  452: ["4.3.1", "Requested action not taken: insufficient system storage"],
  454: ["4.7.0", "Temporary authentication failure"],
  500: ["5.5.2", "Syntax error, command unrecognised"],
  501: ["5.5.4", "Syntax error in parameters or arguments"],
  502: ["5.5.1", "Command not implemented"],
  503: ["5.5.1", "Bad sequence of commands"],
  504: ["5.5.4", "Command parameter not implemented"],
  521: ["5.3.2", "Service does not accept mail"],
  530: ["5.7.0", "Authentication required"],
  534: ["5.7.9", "Authentication mechanism is too weak"],
  535: ["5.7.8", "Authentication credentials invalid"],
  538: ["5.7.11", "Encryption required for requested authentication mechanism"],
  550: ["5.1.1", "Requested action not taken: mailbox unavailable"],
  551: ["5.1.6", "User not local; please try <forward-path>"],
  552: ["5.3.4", "Requested mail action aborted: exceeded storage allocation"],
  553: ["5.1.3", "Requested action not taken: mailbox name not allowed"],
  554: ["5.0.0", "Transaction failed"],
  555: ["5.5.4", "MAIL FROM/RCPT TO parameters not recognised or not implemented"],
};

/** The code of a rendered reply ("250 2.0.0 Ok\r\n" is 250): its first three digits. */
export function replyCode(reply: string): number {
  return reply.charCodeAt(0) * 100 + reply.charCodeAt(1) * 10 + reply.charCodeAt(2) - 48 * 111;
}

/** Reply texts come from hooks too: a CR or LF in them would split the reply and desynchronise the client. */
function sanitizeLine(text: string): string {
  // Most texts are clean: a look at each character costs less than a regular expression's replace.
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 13 || c === 10 || c === 0) return text.replace(/[\r\n\0]+/g, " ");
  }
  return text;
}

/**
 * Renders a reply. `enhanced` is prefixed on every line (RFC 2034 section 4) when given; pass
 * undefined for the greeting, EHLO/HELO answers and 3xx intermediates, which carry none.
 */
export function formatReply(
  code: number,
  enhanced: string | undefined,
  text: string | readonly string[],
): string {
  const prefix = enhanced ? ` ${enhanced} ` : " ";
  if (typeof text === "string") {
    return `${code}${prefix}${sanitizeLine(text)}${CRLF}`;
  }
  let out = "";
  const last = text.length - 1;
  for (let i = 0; i <= last; i++) {
    out += `${code}${i === last ? prefix : `-${prefix.slice(1)}`}${sanitizeLine(text[i] ?? "")}${CRLF}`;
  }
  return out;
}
