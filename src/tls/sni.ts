/**
 * Certificates chosen by the name a client asks for (SNI): the one parser of the tlsSniCertificates
 * option, the hostname patterns ("mail.example.com", "*.example.com") and how a name finds its entry.
 */

/** One SNI certificate from files: the hostname pattern, normalized, and its PEM files. */
export interface SniCertificateFile {
  hostname: string;
  certPath: string;
  keyPath: string;
}

const SNI_PATTERN = /^(\*\.)?[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*$/;

/** The pattern in lower case without a final dot; throws one sentence for what is not a hostname pattern. */
export function normalizeSniPattern(hostname: string): string {
  const pattern = hostname.trim().toLowerCase().replace(/\.$/, "");
  if (!SNI_PATTERN.test(pattern)) {
    throw new Error(
      `Invalid SNI hostname ${JSON.stringify(hostname)}: give a hostname such as "mail.example.com" or a wildcard such as "*.example.com".`,
    );
  }
  return pattern;
}

/** "host=cert.pem:key.pem, *.example.org=c.pem:k.pem" (tlsSniCertificates), each hostname checked. */
export function parseSniCertificates(text: string): SniCertificateFile[] {
  return text
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean)
    .map((item) => {
      const match = /^([^=\s]+)=([^:]+):(.+)$/.exec(item);
      if (!match) {
        throw new TypeError(
          `Invalid option tlsSniCertificates: "${item}"; each item is hostname=certificate.pem:key.pem.`,
        );
      }
      const [, hostname, certPath, keyPath] = match as unknown as [string, string, string, string];
      try {
        return { hostname: normalizeSniPattern(hostname), certPath, keyPath };
      } catch (error) {
        throw new TypeError(`Invalid option tlsSniCertificates: ${(error as Error).message}`);
      }
    });
}

/** The entry for a requested name: the exact name first, then "*.parent" (one label only); else undefined. */
export function sniEntryFor<T>(entries: ReadonlyMap<string, T>, servername: string): T | undefined {
  const name = servername.toLowerCase().replace(/\.$/, "");
  const exact = entries.get(name);
  if (exact) return exact;
  const dot = name.indexOf(".");
  return dot > 0 ? entries.get(`*${name.slice(dot)}`) : undefined;
}
