/**
 * NatsSink options from one URL (for a command line or a config value): the server, credentials as the
 * URL's user information, everything else as query parameters. The parameters are listed in
 * docs/sinks-nats.md; an unknown one is an error, not ignored.
 *
 *     nats://user:password@nats.example:4222?stream=MAIL&subject=mail.{domain}&publishTimeout=5000
 */
import type { NatsDeclareOptions, NatsSinkOptions, NatsTlsOptions } from "./nats-options.js";

type Setter = (options: NatsSinkOptions, value: string, name: string) => void;

const NUMBER_PARAMETERS = [
  "publishTimeout",
  "window",
  "maxMessageSize",
  "connectTimeout",
  "pingInterval",
  "closeTimeout",
] as const;
const DECLARE_NUMBER_PARAMETERS = [
  "duplicateWindow",
  "maxAge",
  "maxBytes",
  "maxMsgs",
  "replicas",
  "bucketTtl",
  "bucketMaxBytes",
] as const;
const TLS_FILES = { tlsCa: "caFile", tlsCert: "certFile", tlsKey: "keyFile" } as const;

const SETTERS: Record<string, Setter> = {
  subject: (options, value) => {
    options.subject = value;
  },
  bucket: (options, value) => {
    options.bucket = value === "none" ? null : value;
  },
  name: (options, value) => {
    options.name = value;
  },
  creds: (options, value) => {
    options.credsFile = value;
  },
  stream: (options, value) => {
    declaration(options).stream = value;
  },
  subjects: (options, value) => {
    declaration(options).subjects = value.split(",");
  },
  ...Object.fromEntries(
    NUMBER_PARAMETERS.map((key): [string, Setter] => [
      key,
      (options, value, name) => {
        options[key] = integer(name, value);
      },
    ]),
  ),
  ...Object.fromEntries(
    DECLARE_NUMBER_PARAMETERS.map((key): [string, Setter] => [
      key,
      (options, value, name) => {
        declaration(options)[key] = integer(name, value);
      },
    ]),
  ),
  ...Object.fromEntries(
    Object.entries(TLS_FILES).map(([parameter, key]): [string, Setter] => [
      parameter,
      (options, value) => {
        options.tls = { ...options.tls, [key]: value } satisfies NatsTlsOptions;
      },
    ]),
  ),
};

/**
 * The options a `nats://` or `tls://` URL describes. Credentials stay in `servers` (NatsSink takes them out
 * and never logs them). Throws a TypeError naming a bad or unknown parameter.
 */
export function natsSinkOptionsFromUrl(text: string): NatsSinkOptions {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // The text may hold a password: never repeat it.
    throw new TypeError("Invalid NATS URL: use nats://[user:password@]host:port?stream=...&subject=...");
  }
  if (url.protocol !== "nats:" && url.protocol !== "tls:") {
    throw new TypeError(`Invalid NATS URL: the scheme is ${url.protocol}; use nats:// or tls://.`);
  }
  const parameters = [...url.searchParams];
  url.search = "";
  url.hash = "";
  const options: NatsSinkOptions = { servers: url.href.replace(/\/$/, "") };
  for (const [name, value] of parameters) {
    const set = SETTERS[name];
    if (!set) {
      throw new TypeError(
        `Invalid NATS URL: unknown parameter ${name}; known: ${Object.keys(SETTERS).join(", ")}.`,
      );
    }
    set(options, value, name);
  }
  if (options.declare && !options.declare.stream) {
    throw new TypeError("Invalid NATS URL: the stream parameters need stream=NAME (the stream to create).");
  }
  return options;
}

function declaration(options: NatsSinkOptions): NatsDeclareOptions {
  options.declare ??= { stream: "" };
  return options.declare;
}

function integer(name: string, value: string): number {
  if (!/^-?\d+$/.test(value)) throw new TypeError(`Invalid NATS URL: ${name}=${value} is not an integer.`);
  return Number(value);
}
