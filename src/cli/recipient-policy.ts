/**
 * Which recipients `mailgate serve` accepts, for a public MX: the domains of --accept-domains (any local
 * part) and the entries of --recipients FILE (an address, or `@domain` for a whole domain; re-read on
 * SIGHUP). Anyone else gets 550 5.1.1 at RCPT. Without either flag every recipient is accepted.
 *
 * Matching ignores case (RFC 5321 lets the local part be case-sensitive, but no one hands out addresses
 * that differ only in case), and domains are compared in their ASCII form, so that an SMTPUTF8 recipient
 * at bücher.example matches an entry for xn--bcher-kva.example and the other way round.
 */
import { readFile } from "node:fs/promises";
import { domainToASCII } from "node:url";
import { SmtpError } from "../protocol/errors.js";
import { UsageError } from "./flag-values.js";

export class RecipientPolicy {
  readonly #domains: ReadonlySet<string>;
  readonly #file: string | undefined;
  /** From the file: whole domains, and single addresses (local part lower-cased, ASCII domain). */
  #fileDomains: ReadonlySet<string> = new Set();
  #addresses: ReadonlySet<string> = new Set();
  /** Reloads asked for so far: a read that ends after a later reload was asked for is not put in force. */
  #reloads = 0;

  private constructor(domains: readonly string[], file: string | undefined) {
    this.#domains = new Set(domains);
    this.#file = file;
  }

  /**
   * The policy the flags ask for (reading the file), or undefined when they ask for none.
   * @param domains from parseAcceptDomains
   */
  static async open(
    domains: readonly string[],
    recipientsFile: string | undefined,
  ): Promise<RecipientPolicy | undefined> {
    if (domains.length === 0 && recipientsFile === undefined) return undefined;
    const policy = new RecipientPolicy(domains, recipientsFile);
    await policy.reload();
    return policy;
  }

  /**
   * Re-reads the recipients file; on a failure the previous entries stay and the promise rejects. When
   * reloads overlap (two SIGHUPs while the file is replaced), the one asked last decides: an earlier read
   * that ends after it changes nothing.
   */
  async reload(): Promise<void> {
    if (this.#file === undefined) return;
    const reload = ++this.#reloads;
    let text: string;
    try {
      text = await readFile(this.#file, "utf8");
    } catch (error) {
      throw new Error(
        `Cannot read --recipients ${this.#file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`,
      );
    }
    const domains = new Set<string>();
    const addresses = new Set<string>();
    for (const [index, raw] of text.split("\n").entries()) {
      const entry = raw.replace(/#.*/, "").trim();
      if (entry === "") continue;
      const where = `--recipients ${this.#file} line ${index + 1}`;
      if (entry.startsWith("@")) {
        const domain = asciiDomain(entry.slice(1));
        if (domain === undefined) throw new Error(`${where}: "${entry}" is not an address or @domain.`);
        domains.add(domain);
        continue;
      }
      const key = addressKey(entry);
      if (key === undefined) throw new Error(`${where}: "${entry}" is not an address or @domain.`);
      addresses.add(key);
    }
    if (reload !== this.#reloads) return;
    this.#fileDomains = domains;
    this.#addresses = addresses;
  }

  /** Entries in force: domains from both sources, and single addresses. */
  get size(): { domains: number; addresses: number } {
    return { domains: this.#domains.size + this.#fileDomains.size, addresses: this.#addresses.size };
  }

  /** Throws 550 5.1.1 unless `address` (as RCPT TO gave it, without brackets) is accepted. */
  check(address: string): void {
    const key = addressKey(address);
    if (key !== undefined) {
      const domain = key.slice(key.lastIndexOf("@") + 1);
      if (this.#domains.has(domain) || this.#fileDomains.has(domain) || this.#addresses.has(key)) return;
    }
    throw new SmtpError(
      550,
      "Recipient address rejected: user unknown",
      "5.1.1",
      `550 5.1.1 no such recipient <${address}>`,
    );
  }
}

/** The domains of --accept-domains ("a.example, b.example" or space-separated), in ASCII form. */
export function parseAcceptDomains(text: string): string[] {
  const domains = text.split(/[\s,]+/).filter((domain) => domain !== "");
  if (domains.length === 0)
    throw new UsageError("Invalid value for --accept-domains: it needs at least one domain.");
  return domains.map((domain) => {
    const ascii = asciiDomain(domain);
    if (ascii === undefined)
      throw new UsageError(`Invalid value for --accept-domains: "${domain}" is not a domain.`);
    return ascii;
  });
}

/**
 * local@domain as a lookup key: lower-cased, the local part unquoted, the domain in ASCII; undefined when
 * it is not an address.
 */
function addressKey(address: string): string | undefined {
  const at = address.lastIndexOf("@");
  if (at <= 0 || at === address.length - 1) return undefined;
  const domain = asciiDomain(address.slice(at + 1));
  return domain === undefined ? undefined : `${unquoted(address.slice(0, at)).toLowerCase()}@${domain}`;
}

/**
 * RFC 5321 4.1.2: a local part is the same whether quoted or not ("alice" is alice, "a\"b" is a"b), as
 * Postfix compares them: the quotes and the backslashes of quoted pairs go.
 */
function unquoted(local: string): string {
  if (local.length < 2 || !local.startsWith('"') || !local.endsWith('"')) return local;
  return local.slice(1, -1).replace(/\\(.)/g, "$1");
}

/** A domain in lower-case ASCII (an address literal as written), or undefined when it is none. */
function asciiDomain(domain: string): string | undefined {
  const lower = domain.toLowerCase();
  if (lower.startsWith("[")) return lower.endsWith("]") ? lower : undefined;
  const ascii = domainToASCII(lower);
  return HOST_NAME.test(ascii) ? ascii : undefined;
}

/** Dot-separated labels of letters, digits and inner hyphens (RFC 1123), 253 characters at most. */
const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
