/**
 * How a message ended, typed where the hooks return it, and the replies it makes: one in SMTP, one per
 * recipient in LMTP (RFC 2033 4.2).
 */
import { replyFromHookText, SmtpError } from "./errors.js";
import type { RecipientOutcome } from "./hooks.js";

/** How a message ended: refused, accepted (with the hook's 250 text), or one outcome per recipient (LMTP). */
export type MessageResult =
  | { kind: "refused"; error: unknown }
  | { kind: "accepted"; text: string | undefined }
  | { kind: "perRecipient"; outcomes: readonly RecipientOutcome[] };

/**
 * The result of what a message hook threw or returned: a thrown value refuses; a returned string is the
 * 250's text, an array the per-recipient outcomes; anything else is a plain 250.
 */
export function messageResult(error: unknown, value: unknown): MessageResult {
  if (error !== null && error !== undefined) return { kind: "refused", error };
  if (typeof value === "string") return { kind: "accepted", text: value };
  if (Array.isArray(value)) return { kind: "perRecipient", outcomes: value as RecipientOutcome[] };
  return { kind: "accepted", text: undefined };
}

/** One reply of a message's answer: a refusal (its error, 451 when not an SmtpError) or a 250 text. */
export type MessageAnswer = { refused: true; error: unknown } | { refused: false; text: string };

/**
 * The replies to a complete message. In LMTP one per recipient, in RCPT order; in SMTP one, where
 * per-recipient outcomes that hold a refusal refuse the whole message.
 */
export function messageAnswers(
  result: MessageResult,
  recipients: readonly string[],
  lmtp: boolean,
): MessageAnswer[] {
  if (!lmtp) {
    if (result.kind === "refused") return [answer(result.error, "")];
    if (result.kind === "accepted") return [answer(result.text, "Ok: message accepted")];
    const refusal = result.outcomes.find((outcome) => outcome instanceof Error);
    return [answer(refusal, "Ok: message accepted")];
  }
  return recipients.map((recipient, index) => {
    if (result.kind === "refused") return answer(result.error, "");
    if (result.kind === "accepted") return answer(result.text, `<${recipient}> Ok`);
    return answer(result.outcomes[index], `<${recipient}> Ok`);
  });
}

/** One outcome: an error (or any other non-text value) refuses, a text is the 250's, nothing the default. */
function answer(outcome: unknown, acceptedText: string): MessageAnswer {
  if (
    outcome instanceof Error ||
    (outcome !== undefined && outcome !== null && typeof outcome !== "string")
  ) {
    return { refused: true, error: outcome };
  }
  const text = replyFromHookText(typeof outcome === "string" ? outcome : acceptedText);
  return text instanceof SmtpError ? { refused: true, error: text } : { refused: false, text };
}
