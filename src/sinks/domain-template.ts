/**
 * The template a broker sink turns into where a message goes (an AMQP routing key, a NATS subject):
 * `{domain}` is replaced by the domain of the message's first recipient, lower-cased; everything else is
 * literal. One template language for every sink, so that an option means the same wherever it is given.
 */
import type { StoreEnvelope } from "../store/store.js";

export const DOMAIN_PLACEHOLDER = "{domain}";

/**
 * Checks `template` (the option `option`) and returns the function that fills it for an envelope.
 * `domainAs` may replace a domain the destination cannot hold (the NATS sink's subject tokens).
 */
export function domainTemplate(
  option: string,
  template: string,
  domainAs: (domain: string) => string = (domain) => domain,
): (envelope: StoreEnvelope) => string {
  if (typeof template !== "string") throw new TypeError(`Invalid option ${option}: give a string.`);
  for (const [placeholder] of template.matchAll(/\{[^}]*\}/g)) {
    if (placeholder !== DOMAIN_PLACEHOLDER) {
      throw new TypeError(
        `Invalid option ${option}: unknown placeholder ${placeholder}; the template knows ${DOMAIN_PLACEHOLDER}.`,
      );
    }
  }
  return (envelope) => template.replaceAll(DOMAIN_PLACEHOLDER, domainAs(firstRecipientDomain(envelope)));
}

/** The domain of the first recipient, lower-cased; "" when it has none (`<postmaster>`). */
function firstRecipientDomain(envelope: StoreEnvelope): string {
  const first = envelope.to[0] ?? "";
  const at = first.lastIndexOf("@");
  return at < 0 ? "" : first.slice(at + 1).toLowerCase();
}
