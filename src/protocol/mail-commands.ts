/**
 * What the mail commands do once the session has let them run: HELO/EHLO/LHLO's argument, MAIL's and
 * RCPT's envelope and hooks, VRFY, EXPN and HELP. Each returns its reply (or throws the SmtpError that
 * refuses it); the session keeps the state they move (what may come next).
 */
import { type CommandLine, isAsciiText, parsePathArgument } from "./commands.js";
import { emptyEnvelope, type Forwarded, type SessionContext } from "./context.js";
import { replyFromHookText, SmtpError } from "./errors.js";
import { heloArgument } from "./helo.js";
import type { SessionHooks } from "./hooks.js";
import { type Awaitable, thenCall } from "./maybe-async.js";
import { recipientDsn, recordMailParameters } from "./parameters.js";
import { formatReply } from "./replies.js";
import type { SessionConfig } from "./session-config.js";

/** The usual 250s of MAIL and RCPT, rendered once. */
const SENDER_OK = formatReply(250, "2.1.0", "Ok");
const RECIPIENT_OK = formatReply(250, "2.1.5", "Ok");

export const HELP_REPLY = formatReply(214, "2.0.0", [
  "Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY EXPN HELP",
  "See RFC 5321 for their use",
]);

/** The HELO/EHLO/LHLO argument, once the verb is the one this server speaks. */
export function greetingArgument(line: CommandLine, config: SessionConfig): string {
  if (config.lmtp !== (line.verb === "LHLO")) {
    // RFC 2033 4.1: an LMTP server greets with LHLO only; an SMTP server does not know LHLO.
    throw new SmtpError(
      500,
      config.lmtp ? "Error: this is LMTP, use LHLO" : "Error: this is SMTP, use EHLO",
      "5.5.1",
    );
  }
  return heloArgument(line, config.heloStrict);
}

/** MAIL FROM: a fresh envelope (with what XFORWARD said), its parameters, the hook; the 250. */
export function mailFrom(
  line: CommandLine,
  ctx: SessionContext,
  config: SessionConfig,
  hooks: Pick<SessionHooks, "onMailFrom">,
  forwarded: Forwarded | null,
): Awaitable<string> {
  const { address, params } = parsePathArgument(line.args, "FROM:", config.internationalization);
  // A fresh envelope: what an earlier, refused MAIL recorded (SMTPUTF8, BODY, SIZE) must not carry over.
  const envelope = emptyEnvelope();
  if (forwarded) envelope.forwarded = forwarded;
  ctx.envelope = envelope;
  recordMailParameters(envelope, params, config, ctx.server.encrypted !== null);
  if (envelope.encodingUtf8 !== "utf8" && !isAsciiText(address)) {
    throw new SmtpError(553, "Non-ASCII address requires the SMTPUTF8 parameter", "5.6.7");
  }
  return thenCall(
    () => hooks.onMailFrom(ctx, address, params),
    (returned) => {
      const accepted = addressOrReply(returned, address);
      envelope.from = accepted.address;
      envelope.mailParams = params;
      return accepted.text === "Ok" ? SENDER_OK : formatReply(250, "2.1.0", accepted.text);
    },
  );
}

/** RCPT TO: the recipient, its parameters and DSN, the hook; the 250. */
export function rcptTo(
  line: CommandLine,
  ctx: SessionContext,
  config: SessionConfig,
  hooks: Pick<SessionHooks, "onRcptTo">,
): Awaitable<string> {
  const envelope = ctx.envelope;
  const { address, params } = parsePathArgument(line.args, "TO:", envelope.encodingUtf8 === "utf8");
  const dsn = recipientDsn(params, config.dsn);
  return thenCall(
    () => hooks.onRcptTo(ctx, address, params),
    (returned) => {
      const accepted = addressOrReply(returned, address);
      envelope.to.push(accepted.address);
      envelope.rcptParams.push(params);
      envelope.rcptDsn.push(dsn);
      return accepted.text === "Ok" ? RECIPIENT_OK : formatReply(250, "2.1.5", accepted.text);
    },
  );
}

export async function vrfy(
  line: CommandLine,
  ctx: SessionContext,
  hooks: Pick<SessionHooks, "onVrfy">,
): Promise<string> {
  if (line.args === "") throw new SmtpError(501, "Syntax: VRFY address", "5.5.4");
  // RFC 5321 3.5.3: never 250 unless something really verified the address.
  if (!hooks.onVrfy) {
    return formatReply(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery");
  }
  const mailbox = await hooks.onVrfy(ctx, line.args);
  return formatReply(250, "2.1.5", mailbox);
}

export async function expn(
  line: CommandLine,
  ctx: SessionContext,
  hooks: Pick<SessionHooks, "onExpn">,
): Promise<string> {
  if (line.args === "") throw new SmtpError(501, "Syntax: EXPN list", "5.5.4");
  if (!hooks.onExpn) throw new SmtpError(502, "EXPN not available", "5.5.1");
  const members = await hooks.onExpn(ctx, line.args);
  if (members.length === 0) throw new SmtpError(550, "No such list", "5.1.1");
  return formatReply(250, "2.1.5", members);
}

/**
 * What a MAIL or RCPT hook returned: a string replaces the address, but a string that is a whole reply is
 * read as that reply (aiosmtpd's handle_MAIL and handle_RCPT return "250 OK"), never stored as an address:
 * a 4xx or 5xx one refuses, a 2xx one keeps the client's address and gives its text to the 250.
 */
function addressOrReply(returned: unknown, address: string): { address: string; text: string } {
  if (typeof returned !== "string") return { address, text: "Ok" };
  const reply = replyFromHookText(returned);
  if (reply instanceof SmtpError) throw reply;
  return reply === returned ? { address: returned, text: "Ok" } : { address, text: reply };
}
