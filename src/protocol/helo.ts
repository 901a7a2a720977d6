/**
 * The argument of HELO, EHLO and LHLO (RFC 5321 4.1.1.1, RFC 2033 4.1): the name the client gives itself.
 * Hooks see it and the Received header records it, so what it may hold is decided here, once.
 */
import { type CommandLine, isAddressLiteral, MAX_DOMAIN_OCTETS } from "./commands.js";
import { SmtpError } from "./errors.js";

/**
 * True when `text` holds a C0 control or DEL. NUL and CR never get here (decodeCommandLine refuses them in
 * every command) nor LF (it ends the line); the others are refused here, in the one argument that goes into
 * a header (RFC 5322 3.2.3 allows none of them there, and ESC, BS or DEL act on the terminal that shows it).
 */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

// RFC 5321 4.1.2: sub-domain = Let-dig [Ldh-str], at most 63 octets (RFC 1035 2.3.4). No underscore here:
// this is the strict check (Postfix's reject_invalid_helo_hostname tolerates underscores; heloStrict does not).
const STRICT_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const NUMERIC = /^[0-9]+$/;

/**
 * The HELO/EHLO/LHLO argument of `line`, or a 501 SmtpError. By default any one word of printable ASCII is
 * accepted (real clients send "my_pc" or "[192.0.2.1]"); spaces inside it are not (Postfix would join the
 * words, but a space is what lets a name imitate "host (host [address])" in the Received header). With
 * `strict`, it must be a Domain or an address literal, as RFC 5321 4.1.1.1 says.
 */
export function heloArgument(line: CommandLine, strict: boolean): string {
  const { verb } = line;
  // The decoder removed the spaces before the argument; spaces after it are not part of it either.
  let end = line.args.length;
  while (end > 0 && line.args.charCodeAt(end - 1) === 0x20) end--;
  const argument = line.args.slice(0, end);
  if (argument === "") throw new SmtpError(501, `Syntax: ${verb} hostname`, "5.5.4");
  if (hasControl(argument)) {
    throw new SmtpError(501, `Error: control character in the ${verb} argument`, "5.5.4");
  }
  if (argument.includes(" ")) {
    throw new SmtpError(
      501,
      `Error: the ${verb} argument is one host name or address literal, without spaces`,
      "5.5.4",
    );
  }
  if (line.nonAscii) {
    // RFC 6531 3.7.1: the client does not know yet whether SMTPUTF8 is offered, so names here are A-labels.
    throw new SmtpError(
      501,
      `Error: the ${verb} argument must be ASCII (an internationalized name is sent as A-labels)`,
      "5.5.4",
    );
  }
  if (strict && !isAddressLiteral(argument) && !isStrictDomain(argument)) {
    throw new SmtpError(
      501,
      `Error: the ${verb} argument must be a domain name or an address literal (RFC 5321 4.1.1.1)`,
      "5.5.4",
    );
  }
  return argument;
}

/**
 * RFC 5321 Domain = sub-domain *("." sub-domain), at most 255 octets (4.5.3.1.2). The last label may not
 * be all digits (RFC 1123 2.1): "192.0.2.1" is an address, which is written "[192.0.2.1]".
 */
function isStrictDomain(name: string): boolean {
  if (name.length > MAX_DOMAIN_OCTETS) return false;
  const labels = name.split(".");
  return labels.every((label) => STRICT_LABEL.test(label)) && !NUMERIC.test(labels[labels.length - 1] ?? "");
}
