import { formatReply, STANDARD_REPLIES } from "./replies.js";

/**
 * An SMTP reply as a value: thrown from a hook, it becomes the reply to the client (a 421 also closes
 * the connection). The seed's Smtpd???Exception classes map to `SmtpError.code(???)`.
 */
export class SmtpError extends Error {
  readonly code: number;
  readonly enhancedCode: string | undefined;
  readonly replyText: string | readonly string[];

  /**
   * @param code the three-digit reply code (4xx or 5xx; 2xx/3xx are not errors)
   * @param replyText what the client sees after the codes
   * @param enhancedCode the RFC 3463 code, e.g. "5.7.1"; derived from the standard table when omitted
   * @param logMessage what the log shows (defaults to the reply); never sent to the client
   */
  constructor(
    code: number,
    replyText?: string | readonly string[],
    enhancedCode?: string,
    logMessage?: string,
  ) {
    if (!Number.isInteger(code) || code < 400 || code > 599) {
      throw new RangeError(`SmtpError code must be an integer from 400 to 599, got ${code}.`);
    }
    const standard = STANDARD_REPLIES[code];
    const text = replyText ?? standard?.[1] ?? "Error";
    const enhanced = enhancedCode ?? standard?.[0] ?? `${Math.floor(code / 100)}.0.0`;
    super(logMessage ?? `${code} ${enhanced} ${Array.isArray(text) ? text.join(" / ") : text}`);
    this.name = "SmtpError";
    this.code = code;
    this.enhancedCode = enhanced;
    this.replyText = text;
  }

  /** The seed's standard reply for `code` (see STANDARD_REPLIES), optionally with a log message. */
  static code(code: number, logMessage?: string): SmtpError {
    return new SmtpError(code, undefined, undefined, logMessage);
  }

  /** True for replies after which the server closes the connection (RFC 5321 3.8, RFC 7504 for 521). */
  get closesConnection(): boolean {
    return this.code === 421 || this.code === 521;
  }

  /** The reply as sent on the wire. */
  render(enhancedStatusCodes = true): string {
    return formatReply(this.code, enhancedStatusCodes ? this.enhancedCode : undefined, this.replyText);
  }
}

/**
 * smtp-server's convention: an Error with a numeric `responseCode` (4xx or 5xx) asks for that reply. It
 * becomes an SmtpError with the standard text for the code: the error's own message may hold internals,
 * so it is logged, never sent. Anything else is returned as it is.
 */
export function adoptResponseCode(error: unknown): unknown {
  if (error instanceof SmtpError || !(error instanceof Error)) return error;
  const code = (error as { responseCode?: unknown }).responseCode;
  if (typeof code !== "number" || !Number.isInteger(code) || code < 400 || code > 599) return error;
  return SmtpError.code(code, `${code} asked by a hook's ${error.name} (responseCode): ${error.message}`);
}

/**
 * aiosmtpd's habit: a hook returns the whole reply ("250 Message accepted", "550 5.1.1 No such user").
 * A 4xx or 5xx one becomes that refusal (accepting a message its hook refused would be the worst
 * reading); a 2xx one gives its text to the 250. Any other text is returned as it is.
 */
export function replyFromHookText(text: string): SmtpError | string {
  const match = /^([245][0-9][0-9])(?: (?:([245]\.[0-9]{1,3}\.[0-9]{1,3}) )?(.*))?$/s.exec(text);
  if (!match) return text;
  const code = Number(match[1]);
  const rest = match[3] === undefined || match[3] === "" ? undefined : match[3];
  if (code >= 400) return new SmtpError(code, rest, match[2]);
  return rest ?? "Ok";
}
