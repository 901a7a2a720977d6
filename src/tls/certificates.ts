/**
 * Certificates: the seed's CN/SAN derivation, an in-memory self-signed certificate for testing, and
 * loading a PEM chain and key with checks that fail early with one clear sentence.
 *
 * Why no library for the self-signed certificate. Node's crypto makes the key, signs and parses
 * certificates (OpenSSL), but cannot build one. The candidates, as installed on Node 20:
 * - `@peculiar/x509` 2.2 (pure TypeScript, webcrypto, well kept): 20 packages, 4.9 MB, and it throws at
 *   import ("tsyringe requires a reflect polyfill") unless the application first imports
 *   `reflect-metadata`, which is a second runtime dependency and a global `Reflect` polyfill that a
 *   library should not impose on its users.
 * - `selfsigned` 5.5 (the popular wrapper): pulls in `@peculiar/x509` 1.x, `pkijs` and that polyfill:
 *   23 packages, 9 MB, with little control over extensions and serial.
 * - `node-forge` 1.4 (one package, 1.8 MB): untyped (needs `@types/node-forge`), pure-JavaScript crypto
 *   with a history of ASN.1 and signature-verification CVEs (2022, 2025), no ECDSA certificates.
 * A self-signed certificate needs only about a dozen DER constructs (der.ts, ~100 lines), while the key
 * pair, the signature and the strict parsing that checks our output stay with OpenSSL via node:crypto;
 * the tests parse every generated certificate with crypto.X509Certificate, verify its signature and run
 * real TLS handshakes that verify the chain. So this module encodes DER itself and adds no dependency.
 *
 * Key: RSA 2048 with a SHA-256 signature by default, because every SMTP client accepts it; `keyType: "ec"`
 * makes an ECDSA P-256 certificate instead (the default key of common ACME clients), mainly for tests.
 */
import {
  createHash,
  createPrivateKey,
  generateKeyPair,
  randomBytes,
  sign,
  X509Certificate,
} from "node:crypto";
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { domainToASCII } from "node:url";
import { promisify } from "node:util";
import {
  bitString,
  booleanValue,
  ipAddressBytes,
  nullValue,
  octetString,
  oid,
  sequence,
  set,
  smallInteger,
  Tag,
  time,
  tlv,
  unsignedInteger,
  utf8String,
} from "./der.js";

const generateKeyPairAsync = promisify(generateKeyPair);

/** The seed's loopback test: 127.0.0.1 (with optional zero padding), ::1 or localhost. */
const LOOPBACK = /^(127\.0?0?0\.0?0?0\.0?0?1|::1|localhost)$/i;

/** The CN used when the first name is a loopback address, as in the seed. */
export const LOOPBACK_CN = "localhost.local";

/** The IP of an "ip:port", "[ipv6]:port" or bare IP entry (the server's `addresses` are "ip:port"). */
function addressHost(address: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(address);
  if (bracketed?.[1] !== undefined) return bracketed[1];
  if (isIP(address.split("%")[0] ?? "") !== 0) return address;
  const colon = address.lastIndexOf(":");
  return colon < 0 ? address : address.slice(0, colon);
}

/**
 * The subject CN and subjectAltNames for a generated certificate, by the seed's rules.
 * Without `cn`: the SAN list is the unique hosts, then the unique bound IPs (from "ip:port" addresses),
 * without "*"; if its first entry is loopback the CN is "localhost.local" and the list stays whole,
 * otherwise the first entry becomes the CN and leaves the list. (An empty list, which the seed does not
 * handle, also gives "localhost.local".)
 * `hostname` (the server's name in its greeting, which an MX record points at) comes after them when
 * it can be a certificate name, so that a sender checking the MX name finds it; the seed used the hosts
 * only. With `cn`: it is used trimmed, and `san` as given with blanks removed and empty entries dropped.
 * The generator always adds the CN to the SAN list too, as the seed does, because clients check only
 * subjectAltName when it is present (RFC 6125).
 */
export function deriveCertificateNames(
  hosts: readonly string[],
  addresses: readonly string[],
  cn?: string,
  san?: readonly string[],
  hostname?: string,
): { cn: string; san: string[] } {
  if (cn !== undefined && cn.trim() !== "") {
    const names = (san ?? []).map((name) => name.replace(/\s/g, "")).filter((name) => name !== "");
    return { cn: cn.trim(), san: [...new Set(names)] };
  }
  const ownName = hostname?.trim().toLowerCase().replace(/\.$/, "");
  const named = ownName !== undefined && isCertificateName(ownName) ? [ownName] : [];
  const names = [...new Set([...hosts, ...addresses.map(addressHost), ...named])].filter(
    (name) => name !== "*",
  );
  const first = names[0];
  if (first === undefined || LOOPBACK.test(first)) return { cn: LOOPBACK_CN, san: names };
  return { cn: first, san: names.slice(1) };
}

export interface SelfSignedOptions {
  /** Subject common name; also the first subjectAltName. */
  cn: string;
  /** Further subjectAltNames: IP literals become iPAddress names, others dNSName (IDNs in punycode). */
  san?: readonly string[];
  /** Validity in days from now (default 90), ignored when `notAfter` is given. */
  days?: number;
  /** Start of validity; default one hour ago, so that a client whose clock is a little behind accepts it. */
  notBefore?: Date;
  /** End of validity; default `days` from now. A past date makes an expired certificate, for tests. */
  notAfter?: Date;
  /** "rsa" (default): RSA 2048 signed with SHA-256; "ec": ECDSA on P-256 signed with SHA-256. */
  keyType?: "rsa" | "ec";
}

const DAY_MS = 24 * 60 * 60 * 1000;

const OID = {
  commonName: "2.5.4.3",
  sha256WithRSAEncryption: "1.2.840.113549.1.1.11",
  ecdsaWithSHA256: "1.2.840.10045.4.3.2",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  subjectKeyIdentifier: "2.5.29.14",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
};

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [booleanValue(true)] : []), octetString(value));
}

const DNS_NAME = /^[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*$/;

/** True when `name` can be a subjectAltName (a hostname, "*.domain" or an IP address). */
function isCertificateName(name: string): boolean {
  try {
    generalName(name);
    return true;
  } catch {
    return false;
  }
}

function generalName(name: string): Buffer {
  const ip = ipAddressBytes(name);
  if (ip) return tlv(Tag.ipAddress, ip);
  const wildcard = name.startsWith("*.");
  const ascii = domainToASCII(wildcard ? name.slice(2) : name);
  if (!DNS_NAME.test(ascii) || isIP(ascii) !== 0) {
    throw new Error(
      `Invalid certificate name ${JSON.stringify(name)}: each subjectAltName (tlsCertCn, tlsCertSan) must be a hostname, "*.domain" or an IP address.`,
    );
  }
  return tlv(Tag.dnsName, Buffer.from(wildcard ? `*.${ascii}` : ascii, "ascii"));
}

/**
 * A self-signed certificate and its private key (PEM, PKCS#8), made in memory: RSA 2048 (or ECDSA
 * P-256 with `keyType: "ec"`), SHA-256, X.509 v3 with a random 128-bit serial, basicConstraints
 * CA:FALSE, keyUsage digitalSignature (and keyEncipherment for RSA), extKeyUsage serverAuth and
 * clientAuth, subjectKeyIdentifier, and subjectAltName holding the CN and `san`. For testing only: no
 * client can verify it unless told to trust it.
 */
export async function generateSelfSignedCertificate(
  options: SelfSignedOptions,
): Promise<{ cert: string; key: string }> {
  const cn = options.cn.trim();
  if (cn === "") throw new Error("A self-signed certificate needs a non-empty CN (tlsCertCn).");
  const days = options.days ?? 90;
  const notBefore = options.notBefore ?? new Date(Date.now() - 60 * 60 * 1000);
  if (options.notAfter === undefined && !(Number.isFinite(days) && days > 0)) {
    throw new RangeError(`Invalid certificate validity of ${days} days: give a positive number of days.`);
  }
  const notAfter = options.notAfter ?? new Date(Date.now() + days * DAY_MS);
  if (!(notBefore.getTime() < notAfter.getTime())) {
    throw new RangeError(
      `Invalid certificate validity from ${notBefore.toISOString()} to ${notAfter.toISOString()}: notBefore must come before notAfter.`,
    );
  }
  const names = [...new Set([cn, ...(options.san ?? [])].map((name) => name.trim()).filter((n) => n !== ""))];
  const altNames = names.map(generalName);

  const ec = options.keyType === "ec";
  const { publicKey, privateKey } = ec
    ? await generateKeyPairAsync("ec", { namedCurve: "P-256" })
    : await generateKeyPairAsync("rsa", { modulusLength: 2048 });
  const spki = publicKey.export({ type: "spki", format: "der" });
  // subjectKeyIdentifier, RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's value,
  // which for RSA is the PKCS#1 public key and for EC the uncompressed point (04 || x || y).
  const jwk = ec ? publicKey.export({ format: "jwk" }) : undefined;
  const keyBits = jwk
    ? Buffer.concat([
        Buffer.from([4]),
        Buffer.from(jwk.x ?? "", "base64url"),
        Buffer.from(jwk.y ?? "", "base64url"),
      ])
    : publicKey.export({ type: "pkcs1", format: "der" });
  const keyId = createHash("sha1").update(keyBits).digest();

  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40; // positive, and exactly 16 bytes long
  // RFC 5758 3.2: ecdsa-with-SHA256 has no parameters; RFC 4055: sha256WithRSAEncryption has NULL.
  const algorithm = ec
    ? sequence(oid(OID.ecdsaWithSHA256))
    : sequence(oid(OID.sha256WithRSAEncryption), nullValue());
  const name = sequence(set(sequence(oid(OID.commonName), utf8String(cn))));
  const tbs = sequence(
    tlv(Tag.explicit0, smallInteger(2)), // version v3
    unsignedInteger(serial),
    algorithm,
    name, // issuer: self-signed
    sequence(time(notBefore), time(notAfter)),
    name, // subject
    spki,
    tlv(
      Tag.explicit3,
      sequence(
        extension(OID.basicConstraints, true, sequence()),
        // RSA: digitalSignature (bit 0) and keyEncipherment (bit 2), 1010 0000, five unused bits.
        // EC: digitalSignature alone, 1000 0000, seven unused bits (keyEncipherment is not for EC, RFC 5480 3).
        extension(
          OID.keyUsage,
          true,
          ec ? bitString(Buffer.from([0x80]), 7) : bitString(Buffer.from([0xa0]), 5),
        ),
        extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth), oid(OID.clientAuth))),
        extension(OID.subjectKeyIdentifier, false, octetString(keyId)),
        extension(OID.subjectAltName, false, sequence(...altNames)),
      ),
    ),
  );
  const signature = sign("sha256", tbs, privateKey);
  const der = sequence(tbs, algorithm, bitString(signature));
  const cert = toPem("CERTIFICATE", der);
  const key = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  return { cert, key };
}

function toPem(label: string, der: Buffer): string {
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const PRIVATE_KEY_BLOCK = /-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----[\s\S]*?-----END \1-----/;

export interface LoadedCertificate {
  /** The PEM chain as read: the certificate first, then its intermediates. */
  cert: string;
  /** The PEM private key block. */
  key: string;
  /** The first certificate of the chain (the server's own). */
  x509: X509Certificate;
  /** Every certificate of the chain, in file order. */
  chain: X509Certificate[];
}

async function readText(path: string, what: string, option: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new Error(
      `Cannot read the TLS ${what} file "${path}" (${code}): check ${option} and the file's permissions.`,
      { cause: error },
    );
  }
}

/** How a certificate and its key are named in error messages: by their files, or by the options that gave them. */
export interface PemOrigin {
  /** "The TLS certificate file \"cert.pem\"" or "The TLS certificate given in tlsCert". */
  certSource: string;
  /** "The TLS private key file \"key.pem\"" or "The TLS private key given in tlsKey". */
  keySource: string;
  /** "in \"cert.pem\"" or "given in tlsCert": where the certificate is, after "The TLS certificate". */
  certWhere: string;
  /** "in \"key.pem\"" or "given in tlsKey". */
  keyWhere: string;
}

function fileOrigin(certPath: string, keyPath: string): PemOrigin {
  return {
    certSource: `The TLS certificate file "${certPath}"`,
    keySource: `The TLS private key file "${keyPath}"`,
    certWhere: `in "${certPath}"`,
    keyWhere: `in "${keyPath}"`,
  };
}

/** The origin of a certificate and key given in memory, under these option names. */
export function memoryOrigin(certOption: string, keyOption: string): PemOrigin {
  return {
    certSource: `The TLS certificate given in ${certOption}`,
    keySource: `The TLS private key given in ${keyOption}`,
    certWhere: `given in ${certOption}`,
    keyWhere: `given in ${keyOption}`,
  };
}

/**
 * Reads a PEM certificate chain (server certificate first) and its private key, and checks them as
 * checkCertificate does; an unreadable file throws one sentence naming the file. `now` is for tests.
 */
export async function loadCertificate(
  certPath: string,
  keyPath: string,
  now: Date = new Date(),
): Promise<LoadedCertificate> {
  const [certText, keyText] = await Promise.all([
    readText(certPath, "certificate", "tlsCertPath"),
    readText(keyPath, "private key", "tlsKeyPath"),
  ]);
  return checkCertificate(certText, keyText, fileOrigin(certPath, keyPath), now);
}

/**
 * Checks a PEM certificate chain (server certificate first) and its private key: text that is not PEM,
 * a key that does not match the certificate, or a certificate that is expired or not yet valid each
 * throw one sentence naming where they came from and the remedy.
 */
export function checkCertificate(
  certText: string,
  keyText: string,
  origin: PemOrigin,
  now: Date = new Date(),
): LoadedCertificate {
  const blocks = certText.match(CERTIFICATE_BLOCK) ?? [];
  if (blocks.length === 0) {
    throw new Error(
      `${origin.certSource} holds no PEM certificate ("-----BEGIN CERTIFICATE-----"): give the certificate chain in PEM, the server certificate first.`,
    );
  }
  const chain = blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new Error(
        `${origin.certSource} has a damaged certificate (PEM block ${index + 1}): export the certificate chain again in PEM.`,
        { cause: error },
      );
    }
  });

  const keyBlock = PRIVATE_KEY_BLOCK.exec(keyText);
  if (!keyBlock) {
    throw new Error(
      `${origin.keySource} holds no PEM private key ("-----BEGIN PRIVATE KEY-----"): give the certificate's private key in PEM.`,
    );
  }
  if (keyBlock[1] === "ENCRYPTED PRIVATE KEY" || /Proc-Type:\s*4,ENCRYPTED/.test(keyBlock[0])) {
    throw new Error(
      `The TLS private key ${origin.keyWhere} is encrypted with a passphrase: give it unencrypted (for example \`openssl pkey -in key.pem -out plain.pem\`) and protect the file by its permissions.`,
    );
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(keyBlock[0]);
  } catch (error) {
    throw new Error(
      `${origin.keySource} has a damaged private key: export the certificate's private key again in PEM.`,
      { cause: error },
    );
  }

  const [leaf] = chain as [X509Certificate, ...X509Certificate[]];
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new Error(
      `The TLS private key ${origin.keyWhere} does not match the certificate ${origin.certWhere} (${leaf.subject.replace(/\n/g, ", ")}): give the key that the certificate was issued for, or a certificate file whose first certificate is the server's own.`,
    );
  }
  const validFrom = new Date(leaf.validFrom);
  const validTo = new Date(leaf.validTo);
  if (now.getTime() > validTo.getTime()) {
    throw new Error(
      `The TLS certificate ${origin.certWhere} expired on ${validTo.toISOString()}: renew it (for example with your ACME client) and give the new file.`,
    );
  }
  if (now.getTime() < validFrom.getTime()) {
    throw new Error(
      `The TLS certificate ${origin.certWhere} is not valid before ${validFrom.toISOString()}: check the system clock, or use a certificate that is valid now.`,
    );
  }
  return { cert: `${blocks.join("\n")}\n`, key: keyBlock[0], x509: leaf, chain };
}
