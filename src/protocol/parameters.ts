/**
 * The ESMTP parameters of MAIL FROM and RCPT TO that mailgate knows: each is checked against what the
 * session offers (an unoffered one is refused with 555, RFC 5321 4.1.1.11) and recorded on the envelope.
 */
import { decodeXtext, type EsmtpParams } from "./commands.js";
import type { Envelope, RecipientDsn } from "./context.js";
import { SmtpError } from "./errors.js";

/** What the session offers in its EHLO answer, as far as MAIL parameters are concerned. */
export interface MailParameterOffer {
  /** 8BITMIME and SMTPUTF8. */
  internationalization: boolean;
  /** CHUNKING, hence BODY=BINARYMIME. */
  chunking: boolean;
  /** DSN: RET and ENVID (and NOTIFY, ORCPT on RCPT). */
  dsn: boolean;
  /** REQUIRETLS (only over TLS). */
  requireTls: boolean;
  /** SIZE, 0 for no limit. */
  maxMessageSize: number;
}

/**
 * BODY (RFC 6152, 3030), RET and ENVID (RFC 3461), REQUIRETLS (RFC 8689), SMTPUTF8 (RFC 6531) and SIZE
 * (RFC 1870) of a MAIL FROM, recorded on `envelope`; throws the reply for the first bad one.
 */
export function recordMailParameters(
  envelope: Envelope,
  params: EsmtpParams,
  config: MailParameterOffer,
  encrypted: boolean,
): void {
  for (const keyword in params) {
    const value = params[keyword];
    switch (keyword) {
      case "BODY": {
        const body = typeof value === "string" ? value.toUpperCase() : "";
        if (!config.internationalization && !config.chunking) throw unsupportedParameter(keyword);
        const accepted = [
          ...(config.internationalization ? ["7BIT", "8BITMIME"] : []),
          ...(config.chunking ? ["BINARYMIME"] : []),
        ];
        if (!accepted.includes(body)) {
          throw new SmtpError(501, `Error: BODY must be ${accepted.join(" or ")}`, "5.5.4");
        }
        envelope.encodingBody = body.toLowerCase() as Envelope["encodingBody"];
        break;
      }
      case "RET":
        if (!config.dsn) throw unsupportedParameter(keyword);
        if (typeof value !== "string" || !/^(FULL|HDRS)$/i.test(value)) {
          throw new SmtpError(501, "Error: RET must be FULL or HDRS", "5.5.4");
        }
        envelope.dsn.ret = value.toUpperCase() as "FULL" | "HDRS";
        break;
      case "REQUIRETLS":
        if (!config.requireTls) throw unsupportedParameter(keyword);
        if (value !== true) throw new SmtpError(501, "Error: REQUIRETLS takes no value", "5.5.4");
        // RFC 8689 4.1: only over TLS, where it is offered.
        if (!encrypted) throw new SmtpError(530, "REQUIRETLS needs a TLS connection", "5.7.10");
        envelope.requireTls = true;
        break;
      case "ENVID":
        if (!config.dsn) throw unsupportedParameter(keyword);
        envelope.dsn.envid = decodeXtext(value, "ENVID", 100);
        break;
      case "SMTPUTF8":
        if (!config.internationalization) throw unsupportedParameter(keyword);
        if (value !== true) throw new SmtpError(501, "Error: SMTPUTF8 takes no value", "5.5.4");
        envelope.encodingUtf8 = "utf8";
        break;
      case "SIZE": {
        if (typeof value !== "string" || !/^[0-9]{1,20}$/.test(value)) {
          throw new SmtpError(501, "Error: SIZE must be a number of octets", "5.5.4");
        }
        const size = Number(value);
        // RFC 1870 6.1: refuse at MAIL what cannot be accepted, before any data is sent.
        if (config.maxMessageSize > 0 && size > config.maxMessageSize) {
          throw new SmtpError(552, "Message size exceeds fixed maximum message size", "5.3.4");
        }
        envelope.declaredSize = size;
        break;
      }
      default:
        throw unsupportedParameter(keyword);
    }
  }
}

/** RFC 3461 4: NOTIFY and ORCPT, the only RCPT parameters we know (and only with DSN on). */
export function recipientDsn(params: EsmtpParams, dsnOffered: boolean): RecipientDsn {
  const dsn: RecipientDsn = { notify: null, orcpt: null };
  for (const keyword in params) {
    const value = params[keyword];
    if (!dsnOffered || (keyword !== "NOTIFY" && keyword !== "ORCPT")) throw unsupportedParameter(keyword);
    if (typeof value !== "string") throw new SmtpError(501, `Error: ${keyword} needs a value`, "5.5.4");
    if (keyword === "NOTIFY") {
      // RFC 3461 4.1: NEVER stands alone; the others may come in any order, a repeated one counting once.
      const listed = value.toUpperCase().split(",");
      const notify = [...new Set(listed)];
      const valid =
        (listed.length === 1 && listed[0] === "NEVER") ||
        notify.every((n) => n === "SUCCESS" || n === "FAILURE" || n === "DELAY");
      if (!valid) throw new SmtpError(501, "Error: NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY", "5.5.4");
      dsn.notify = notify as RecipientDsn["notify"];
    } else {
      const semicolon = value.indexOf(";");
      const type = value.slice(0, semicolon);
      if (semicolon <= 0 || !/^[A-Za-z0-9-]+$/.test(type)) {
        throw new SmtpError(501, "Error: ORCPT must be addr-type;address", "5.5.4");
      }
      dsn.orcpt = {
        type: type.toLowerCase(),
        address: decodeXtext(value.slice(semicolon + 1), "ORCPT", 500),
      };
    }
  }
  return dsn;
}

function unsupportedParameter(keyword: string): SmtpError {
  return new SmtpError(555, `Unsupported parameter ${keyword}`, "5.5.4");
}
