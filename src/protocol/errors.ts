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
