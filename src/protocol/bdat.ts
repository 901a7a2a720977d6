/**
 * BDAT commands (CHUNKING, RFC 3030): the command's syntax and the reply at a chunk's end. Reading a chunk's octets is ChunkReader's
 * (chunking.ts); pumping them into the message is the session's one body pump.
 */
import type { CommandLine } from "./commands.js";
import { SmtpError } from "./errors.js";
import { formatReply } from "./replies.js";

/** What a BDAT command announces. */
export interface BdatCommand {
  size: number;
  last: boolean;
}

/**
 * BDAT size [LAST] (RFC 3030 2). Exactly: the command line's trailing white space is gone already, and
 * nothing else may differ from what any front end would frame (no trimEnd(), which also drops NBSP or
 * U+2028). Without a size, where the chunk ends is unknown: a front end that framed it otherwise now
 * disagrees with us about what is a command (a smuggling desync), so the session ends (521), as in Postfix.
 */
export function parseBdat(line: CommandLine): BdatCommand {
  const match = /^([0-9]{1,15})(?: +(LAST))?$/i.exec(line.args);
  if (!match) throw new SmtpError(521, "Syntax: BDAT size [LAST]", "5.5.4");
  return { size: Number(match[1]), last: match[2] !== undefined };
}

/** The 250 at the end of a chunk that is not the message's last. */
export function chunkReceivedReply(size: number): string {
  return formatReply(250, "2.0.0", `Ok: ${size} octets received`);
}
