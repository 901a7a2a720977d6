/**
 * The session context handed to every hook, with the three parts of the seed's `ctx`
 * (server, envelope, message), camelCased. Dates are null until the event happens.
 */
import type { X509Certificate } from "node:crypto";
import type { EsmtpParams } from "./commands.js";
import type { ProxyInfo } from "./proxy.js";

/** What the TLS layer says of an encrypted session (ctx.server.tls); src/tls fills it in. */
export interface TlsSessionInfo {
  /** "TLSv1.3", "TLSv1.2"... */
  protocol: string;
  /** OpenSSL cipher name, e.g. "TLS_AES_256_GCM_SHA384" or "ECDHE-RSA-AES128-GCM-SHA256". */
  cipher: string;
  /** IANA name of the cipher. */
  cipherStandardName: string;
  /** Hostname the client asked for by SNI, if any. */
  servername: string | undefined;
  /** The client's certificate, when one was requested and sent. */
  peerCertificate: X509Certificate | undefined;
  /** True when the client's certificate verified against `caPath` (never true without a CA file). */
  verified: boolean;
  /** Why it did not verify (an OpenSSL code such as "UNABLE_TO_VERIFY_LEAF_SIGNATURE"), if it did not. */
  verifyError: string | undefined;
}

/** What XFORWARD said about the original client, for the next transaction (ctx.envelope.forwarded). */
export type Forwarded = Partial<
  Record<"name" | "addr" | "port" | "proto" | "helo" | "ident" | "source", string>
>;

export interface ServerInfo {
  /** Local host name (reverse DNS of the local address when lookups are on, else the address). */
  localHost: string;
  localIp: string;
  localPort: number;
  /** Text of the 220 greeting; a connect hook may change it. */
  localResponse: string;
  remoteHost: string;
  remoteIp: string;
  remotePort: number;
  /** The argument of the last HELO/EHLO/LHLO. */
  helo: string;
  /** First line of the HELO/EHLO answer; connect and helo hooks may change it. */
  heloResponse: string;
  /** "HELO", "EHLO" or "LHLO" once the client has greeted. */
  heloCommand: string;
  connected: Date;
  /** Number of errors answered in this session (unknown commands, bad syntax, hook errors). */
  exceptions: number;
  /** The errors counted in `exceptions`, oldest first (at most the last 100 are kept). */
  errors: Error[];
  authorizationId: string;
  authenticationId: string;
  authenticated: Date | null;
  /** The SASL mechanism of the successful AUTH, or "". */
  authMechanism: string;
  encrypted: Date | null;
  /** Protocol, cipher and client certificate of the TLS layer, once encrypted. */
  tls: TlsSessionInfo | null;
  /** What a trusted proxy said in its PROXY header (remoteIp/localIp above are already the proxied ones). */
  proxy: ProxyInfo | null;
}

export interface Envelope {
  /** Reverse-path without brackets; "" for the null sender <>. */
  from: string;
  /** Accepted recipients without brackets, in RCPT order. */
  to: string[];
  /** BODY= of MAIL FROM: "" when not given, "7bit", "8bitmime" or "binarymime" (with BDAT only). */
  encodingBody: "" | "7bit" | "8bitmime" | "binarymime";
  /** "utf8" when MAIL FROM carried SMTPUTF8, else "". */
  encodingUtf8: "" | "utf8";
  /** SIZE= declared on MAIL FROM, or null. */
  declaredSize: number | null;
  /** All MAIL FROM parameters, by upper-case keyword. */
  mailParams: EsmtpParams;
  /** The parameters of each accepted RCPT TO, parallel to `to`. */
  rcptParams: EsmtpParams[];
  /** DSN (RFC 3461) of MAIL FROM: RET= and ENVID= (xtext decoded), null when not given. */
  dsn: { ret: "FULL" | "HDRS" | null; envid: string | null };
  /** DSN of each accepted recipient, parallel to `to`. */
  rcptDsn: RecipientDsn[];
  /** MAIL FROM carried REQUIRETLS (RFC 8689): the message must only travel over TLS from here on. */
  requireTls: boolean;
  /** What a trusted front end said with XFORWARD before this MAIL (Postfix's extension), or {}. */
  forwarded: Forwarded;
}

/** RFC 3461 4.1 and 4.2: NOTIFY= and ORCPT= of one RCPT TO, null when not given. */
export interface RecipientDsn {
  notify: ("NEVER" | "SUCCESS" | "FAILURE" | "DELAY")[] | null;
  /** The original recipient: its address type ("rfc822", "utf-8"...) and the xtext-decoded address. */
  orcpt: { type: string; address: string } | null;
}

export interface MessageInfo {
  /** When DATA was accepted (354 sent). */
  received: Date | null;
  /** When the end of data arrived. */
  delivered: Date | null;
  /** Bytes of message data so far (including what hooks wrote); final once `delivered` is set. */
  bytesize: number;
  /** True once the empty line ending the header block has been received. */
  headers: boolean;
  /** Line break used in message data (always CRLF: bare line breaks are handled by the CRLF mode). */
  crlf: "\r\n";
  /** The whole message as received, when complete; empty while streaming to an onMessageStream hook. */
  data: Buffer;
  /**
   * Inserts bytes into the message at the current position: at data start they come first (a Received
   * header), at the end of headers they come before the empty line (an X- header).
   */
  write(bytes: Buffer | string): void;
}

export interface SessionContext {
  server: ServerInfo;
  envelope: Envelope;
  message: MessageInfo;
}

export function emptyEnvelope(): Envelope {
  return {
    from: "",
    to: [],
    encodingBody: "",
    encodingUtf8: "",
    declaredSize: null,
    // Null prototype like the parsed parameters, but with fast properties: Object.create(null) makes a
    // dictionary (about 190 bytes where this takes 56), and every connection holds one while idle.
    mailParams: Object.setPrototypeOf({}, null),
    rcptParams: [],
    dsn: { ret: null, envid: null },
    rcptDsn: [],
    requireTls: false,
    forwarded: {},
  };
}

/** Where a session's connection comes from and goes to, and the texts it starts with. */
export interface ConnectionEnds {
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  localResponse: string;
  heloResponse: string;
}

const NO_DATA = Buffer.alloc(0);

/** ctx.message.write outside message data; the session installs its own meanwhile. Shared by all contexts. */
export function writeOutsideData(_bytes: Buffer | string): void {
  throw new Error("ctx.message.write() is only available while message data is being received");
}

/**
 * A fresh context for one connection (the session installs ctx.message.write while data arrives).
 * Each part is one object literal naming every field, in the order they always had: all fields live
 * inside the object and every context shares one hidden class (a spread of `ends` used to give each
 * ctx.server its own hidden class and an out-of-object property array: about 800 bytes per connection).
 */
export function createContext(ends: ConnectionEnds): SessionContext {
  const { localIp, remoteIp } = ends;
  return {
    server: {
      localIp,
      localPort: ends.localPort,
      remoteIp,
      remotePort: ends.remotePort,
      localResponse: ends.localResponse,
      heloResponse: ends.heloResponse,
      // A UNIX socket peer has no address: it is this machine, so it is named "localhost" with no IP.
      localHost: localIp === "" ? "localhost" : localIp,
      remoteHost: remoteIp === "" ? "localhost" : remoteIp,
      helo: "",
      heloCommand: "",
      connected: new Date(),
      exceptions: 0,
      errors: [],
      authorizationId: "",
      authenticationId: "",
      authenticated: null,
      authMechanism: "",
      encrypted: null,
      tls: null,
      proxy: null,
    },
    envelope: emptyEnvelope(),
    message: {
      received: null,
      delivered: null,
      bytesize: 0,
      headers: false,
      crlf: "\r\n",
      data: NO_DATA,
      write: writeOutsideData,
    },
  };
}
