/**
 * The option table: each setting's type, default and meaning, which serves the constructor's
 * validation (options.ts), the CLI's flags and --help, and docs/options.md alike; and beside it the
 * options that only the library takes (TLS material in memory), which no flag can carry.
 */
import { hostname as osHostname } from "node:os";
import type tls from "node:tls";
import { CRLF_MODES, type CrlfMode } from "../protocol/data.js";
import type { Severity } from "../protocol/hooks.js";
import type { PemInput, SniCallback } from "../tls/material.js";
import { TLS_PRESET_NAMES, type TlsPresetName } from "../tls/presets.js";
import { TICKET_KEY_ROTATION_RANGE } from "../tls/ticket-keys.js";

export const SEVERITIES: readonly Severity[] = ["debug", "info", "warn", "error", "fatal"];

/** The configurable values (hooks are separate: see SmtpServerHooks). */
export interface ServerSettings {
  ports: string;
  hosts: string;
  hostname: string;
  maxProcessings: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  greetingDelay: number;
  crlfMode: CrlfMode;
  doDnsReverseLookup: boolean;
  reverseLookupTimeout: number;
  ioCmdTimeout: number;
  minDataRate: number;
  ioBufferChunkSize: number;
  bufferMessagesUpTo: number;
  ioBufferMaxSize: number;
  pipeliningExtension: boolean;
  internationalizationExtensions: boolean;
  chunkingExtension: boolean;
  dsnExtension: boolean;
  requireTlsExtension: boolean;
  maxMessageSize: number;
  maxRecipients: number;
  maxBadCommands: number;
  maxRecipientRefusals: number;
  heloStrict: boolean;
  maxCommandLineLength: number;
  lmtp: boolean;
  socketPath: string;
  socketMode: number | null;
  socketReplaceStale: boolean;
  tlsMode: "forbidden" | "optional" | "required";
  tlsPorts: string;
  tlsCertPath: string;
  tlsKeyPath: string;
  tlsCertCn: string;
  tlsCertSan: string;
  tlsPreset: TlsPresetName;
  tlsCiphers: string;
  tlsMinVersion: string;
  tlsCaPath: string;
  tlsSniCertificates: string;
  tlsRequestCert: boolean;
  tlsTicketKeyRotation: number;
  proxyPorts: string;
  proxyTrusted: string;
  xclientTrusted: string;
  authMode: "forbidden" | "optional" | "required";
  authMechanisms: string;
  authOverPlaintext: boolean;
  maxAuthFailures: number;
  maxAuthFailuresPerIp: number;
  authFailureWindow: number;
  loggerSeverity: Severity;
}

type Kind = "string" | "path" | "mode" | "integer" | "boolean" | "enum" | "ports" | "hosts";

export interface OptionSpec {
  name: keyof ServerSettings;
  kind: Kind;
  /** The default, or a function computing it (host name); null for "not set". */
  default: string | number | boolean | null | (() => string);
  description: string;
  values?: readonly string[];
  min?: number;
  max?: number;
}

const MiB = 1024 * 1024;

export const OPTION_SPECS: readonly OptionSpec[] = [
  {
    name: "ports",
    kind: "ports",
    default: "2525",
    description:
      'Ports to listen on: "2525", "2525, 3535" (one item per host, the last reused) or "2525:3535" (several ports for one host). 0 picks a free port.',
  },
  {
    name: "hosts",
    kind: "hosts",
    default: "127.0.0.1",
    description:
      'Addresses or host names to listen on, comma-separated ("127.0.0.1, ::1"); "*" means every local IPv4 and IPv6 address.',
  },
  {
    name: "hostname",
    kind: "string",
    default: () => osHostname(),
    description: "Our name in the greeting, the EHLO answer and the 221/421 replies.",
  },
  {
    name: "maxProcessings",
    kind: "integer",
    default: 100,
    min: 1,
    description: "Sessions served at once; further connections wait, without a greeting, for a free slot.",
  },
  {
    name: "maxConnections",
    kind: "integer",
    default: 1000,
    min: 1,
    description:
      "Connections at most, counted from accept until their session ends (221 or 421 written): those waiting for a slot, in the greeting pause, in a PROXY header or TLS handshake included; one more is answered 421 and closed. A client that keeps its socket open after the end of its session no longer counts (it is closed after 5 s).",
  },
  {
    name: "maxConnectionsPerIp",
    kind: "integer",
    default: 0,
    min: 0,
    description:
      "Connections from one client address at most, counted as maxConnections counts (0 = no limit); one more is answered 421 4.7.0 and closed. The address is the client a PROXY header names (not the proxy), an IPv6 address counts by its /64. Off by default because many clients share an address behind NAT or a relay; set it on public ports.",
  },
  {
    name: "greetingDelay",
    kind: "integer",
    default: 0,
    min: 0,
    description:
      "Milliseconds to wait before the greeting (0 = none), after the PROXY header and an implicit TLS handshake: a client that talks first is answered 554 5.5.0 and closed at once, as Postfix's postscreen_greet_wait does with spambots. A client in the pause holds no processing slot (it counts against maxConnections); the pause counts against ioCmdTimeout, so it must be shorter. A few seconds (Postfix: 6) suit a public MX port; leave it off on submission ports, whose clients are known.",
  },
  {
    name: "crlfMode",
    kind: "enum",
    values: CRLF_MODES,
    default: "ensure",
    description:
      "Bare CR/LF handling: ensure turns a bare LF into CRLF and drops a bare CR; leave keeps them; strict refuses such commands (500) and messages (550). Only <CRLF>.<CRLF> ends DATA in every mode.",
  },
  {
    name: "doDnsReverseLookup",
    kind: "boolean",
    default: false,
    description: "Look up the client's host name before the greeting (bounded by reverseLookupTimeout).",
  },
  {
    name: "reverseLookupTimeout",
    kind: "integer",
    default: 1500,
    min: 1,
    description:
      "Milliseconds a reverse DNS lookup may hold the greeting; then the address is used as the name.",
  },
  {
    name: "ioCmdTimeout",
    kind: "integer",
    default: 30_000,
    min: 1,
    description:
      "Milliseconds a client has to complete each command line (a deadline, not an idle timer); also bounds each hook.",
  },
  {
    name: "minDataRate",
    kind: "integer",
    default: 500,
    min: 1,
    description:
      "Bytes per second a client must sustain in DATA: each chunk extends the deadline by its size / this rate, up to ioCmdTimeout.",
  },
  {
    name: "ioBufferChunkSize",
    kind: "integer",
    default: 64 * 1024,
    min: 1024,
    description: "Bytes buffered for a slow onMessageStream consumer before reading from the client pauses.",
  },
  {
    name: "bufferMessagesUpTo",
    kind: "integer",
    default: 0,
    min: 0,
    description:
      "With onMessageStream: a message that ends within this many bytes is not streamed; onMessageData gets it whole in ctx.message.data (a Readable per message costs more than a small message). 0 = every message streamed. `mailgate serve` uses 65536 unless given.",
  },
  {
    name: "ioBufferMaxSize",
    kind: "integer",
    default: MiB,
    min: 1024,
    description: "Bytes of one unterminated command line after which the connection is closed with 421.",
  },
  {
    name: "pipeliningExtension",
    kind: "boolean",
    default: true,
    description:
      "Offer PIPELINING (RFC 2920). When off, a command sent before the previous reply gets 500; when on, commands that must end a batch and are followed by more input get 554 and close.",
  },
  {
    name: "internationalizationExtensions",
    kind: "boolean",
    default: true,
    description: "Offer 8BITMIME (RFC 6152) and SMTPUTF8 (RFC 6531).",
  },
  {
    name: "chunkingExtension",
    kind: "boolean",
    default: true,
    description:
      "Offer CHUNKING (BDAT) and BINARYMIME (RFC 3030): message bytes sent in counted chunks, binary content allowed.",
  },
  {
    name: "dsnExtension",
    kind: "boolean",
    default: false,
    description:
      "Offer DSN (RFC 3461): RET, ENVID, NOTIFY and ORCPT are checked and given to the hooks in ctx.envelope. Off by default: offering it promises delivery status notifications, which your hooks must then send.",
  },
  {
    name: "requireTlsExtension",
    kind: "boolean",
    default: true,
    description:
      "Offer REQUIRETLS (RFC 8689) inside TLS: MAIL FROM ... REQUIRETLS is recorded in ctx.envelope.requireTls (your delivery must then use TLS); outside TLS it gets 530 5.7.10.",
  },
  {
    name: "maxMessageSize",
    kind: "integer",
    default: 25 * MiB,
    min: 0,
    description:
      "Largest message in bytes, advertised as SIZE; a bigger SIZE= gets 552 at MAIL, a bigger message 552 after its end. 0 = unlimited.",
  },
  {
    name: "maxRecipients",
    kind: "integer",
    default: 100,
    min: 1,
    description: "Recipients per message; further RCPT commands get 452 4.5.3.",
  },
  {
    name: "maxBadCommands",
    kind: "integer",
    default: 20,
    min: 0,
    description:
      "Unknown, malformed or out-of-sequence commands a session may make; the next one gets 421 and close.",
  },
  {
    name: "maxRecipientRefusals",
    kind: "integer",
    default: 20,
    min: 1,
    description:
      "Recipients a session may have refused with a 5xx reply (an unknown mailbox, a policy) since it last delivered a message; the next refusal gets 421 and close, so that a client guessing addresses must deliver a message (or connect again) every this many guesses (Postfix: smtpd_hard_error_limit).",
  },
  {
    name: "heloStrict",
    kind: "boolean",
    default: false,
    description:
      'HELO/EHLO/LHLO must name a domain or an address literal (RFC 5321 4.1.1.1: "bad_host" gets 501). Off: any one word of printable ASCII is accepted. Spaces and control characters get 501 either way.',
  },
  {
    name: "maxCommandLineLength",
    kind: "integer",
    default: 512,
    min: 512,
    description: "Longest command line in octets including CRLF (RFC 5321: 512); longer ones get 500.",
  },
  {
    name: "lmtp",
    kind: "boolean",
    default: false,
    description:
      "Speak LMTP (RFC 2033) instead of SMTP: LHLO, PIPELINING and ENHANCEDSTATUSCODES always on, one reply per recipient after the data.",
  },
  {
    name: "socketPath",
    kind: "path",
    default: "",
    description:
      "Also listen on this UNIX domain socket (its directory must exist). When set, TCP listeners are made only if ports or hosts are given too.",
  },
  {
    name: "socketMode",
    kind: "mode",
    default: null,
    description:
      'Permissions of the socket file, e.g. 0o660 (or "660" on the command line); not set = the umask decides. A number above 0o777 is refused: 666 written in decimal (0666 is a syntax error in ESM) would be mode 1232.',
  },
  {
    name: "socketReplaceStale",
    kind: "boolean",
    default: false,
    description:
      "Replace a socket file that no server answers on (left by a crashed process); a live server's socket is never touched.",
  },
  {
    name: "tlsMode",
    kind: "enum",
    values: ["forbidden", "optional", "required"],
    default: "forbidden",
    description:
      "STARTTLS (RFC 3207): forbidden (not offered), optional (offered), required (MAIL, RCPT, DATA, BDAT, RSET and AUTH get 530 5.7.0 before it).",
  },
  {
    name: "tlsPorts",
    kind: "path",
    default: "",
    description:
      'Ports (of those in ports) that speak implicit TLS from the first byte (SMTPS, RFC 8314), e.g. "465"; comma-separated.',
  },
  {
    name: "tlsCertPath",
    kind: "path",
    default: "",
    description:
      "PEM certificate chain (server certificate first). Without it and tlsKeyPath, a self-signed certificate valid 90 days is generated at start, for testing only.",
  },
  { name: "tlsKeyPath", kind: "path", default: "", description: "PEM private key of tlsCertPath." },
  {
    name: "tlsCertCn",
    kind: "path",
    default: "",
    description:
      'Subject CN of a generated certificate; by default the first host or address ("localhost.local" for loopback), or hostname when hosts is "*".',
  },
  {
    name: "tlsCertSan",
    kind: "path",
    default: "",
    description:
      "Comma-separated subjectAltNames of a generated certificate; by default the hosts and hostname.",
  },
  {
    name: "tlsPreset",
    kind: "enum",
    values: TLS_PRESET_NAMES,
    default: "advancedPlus",
    description:
      "Cipher and protocol preset after the seed's: advancedPlus (TLS 1.2+, OWASP A+ ciphers), advanced, broad, widest, legacy (TLS 1.1+, OpenSSL security level 0). ECDHE before DHE, RSA or ECDSA certificates; TLS 1.3 is always on.",
  },
  {
    name: "tlsCiphers",
    kind: "path",
    default: "",
    description: "An OpenSSL cipher string replacing the preset's.",
  },
  {
    name: "tlsMinVersion",
    kind: "path",
    default: "",
    description: 'Lowest TLS version replacing the preset\'s: "TLSv1.2", "TLSv1.3"...',
  },
  {
    name: "tlsCaPath",
    kind: "path",
    default: "",
    description:
      "PEM CAs that client certificates are verified against; clients must then present a valid one.",
  },
  {
    name: "tlsSniCertificates",
    kind: "path",
    default: "",
    description:
      'Certificates chosen by the name the client asks for (SNI): "mail.example.com=cert.pem:key.pem, *.example.org=c2.pem:k2.pem".',
  },
  {
    name: "tlsRequestCert",
    kind: "boolean",
    default: false,
    description:
      "Ask clients for a certificate without requiring it (recorded in ctx.server.tls.peerCertificate, for hooks that trust senders by certificate).",
  },
  {
    name: "tlsTicketKeyRotation",
    kind: "integer",
    default: 12 * 60 * 60 * 1000,
    min: TICKET_KEY_ROTATION_RANGE.min,
    max: TICKET_KEY_ROTATION_RANGE.max,
    description:
      "Milliseconds between two session-ticket keys (default 12 hours). A TLS 1.2 ticket holds its session's master secret under this key, so a new key bounds what a leaked one exposes; tickets made before a new key no longer resume (one full handshake each).",
  },
  {
    name: "proxyPorts",
    kind: "path",
    default: "",
    description:
      'Ports whose listeners expect a PROXY protocol header (HAProxy v1 or v2) first, e.g. "2526"; the client address hooks and logs see is then the proxied one.',
  },
  {
    name: "proxyTrusted",
    kind: "string",
    default: "127.0.0.1, ::1",
    description:
      "Proxies allowed to send that header (addresses or address/prefix); any other peer, or a malformed, oversized or slow header, is disconnected without a reply.",
  },
  {
    name: "xclientTrusted",
    kind: "path",
    default: "",
    description:
      "Clients (addresses or address/prefix) allowed Postfix's XCLIENT (name the real client; the session starts over) and XFORWARD (recorded in ctx.envelope.forwarded); others get 550. Empty: nobody.",
  },
  {
    name: "authMode",
    kind: "enum",
    values: ["forbidden", "optional", "required"],
    default: "forbidden",
    description:
      "AUTH (RFC 4954): forbidden (not offered), optional, required (MAIL, RCPT, DATA, BDAT get 530 5.7.0 before it). The onAuth hook decides; by default it denies everyone (535).",
  },
  {
    name: "authMechanisms",
    kind: "string",
    default: "PLAIN LOGIN",
    description:
      "Mechanisms offered, space-separated, among PLAIN, LOGIN, CRAM-MD5 (the hook must verify with credentials.verifyPassword) and XOAUTH2 (the token goes to the hook).",
  },
  {
    name: "authOverPlaintext",
    kind: "boolean",
    default: false,
    description:
      "Offer and accept AUTH on a connection that is not encrypted. Off: AUTH needs STARTTLS or an implicit TLS port first (538 5.7.11 otherwise).",
  },
  {
    name: "maxAuthFailures",
    kind: "integer",
    default: 5,
    min: 1,
    description:
      "Failed AUTH attempts per connection before 421 and close; every failure is logged without the secret.",
  },
  {
    name: "maxAuthFailuresPerIp",
    kind: "integer",
    default: 10,
    min: 0,
    description:
      "Failed AUTH attempts from one client address (an IPv4 address, an IPv6 /64) across all its connections within authFailureWindow; once an address reaches it, that session and every AUTH from the address for the next authFailureWindow get 421 4.7.0 and close. Counted by address, never by account name. 0 = no limit.",
  },
  {
    name: "authFailureWindow",
    kind: "integer",
    default: 600_000,
    min: 1,
    description:
      "Milliseconds over which maxAuthFailuresPerIp counts (a fixed window from an address's first failure), and that an address which reached it is refused AUTH.",
  },
  {
    name: "loggerSeverity",
    kind: "enum",
    values: SEVERITIES,
    default: "info",
    description: "Least severe log level written (debug shows the whole dialogue, never message bodies).",
  },
];

/** The TLS material only the library takes: in memory, or made by the caller (no flag can carry it). */
export interface TlsMaterialSettings {
  tlsCert: PemInput;
  tlsKey: PemInput;
  tlsCa: PemInput | readonly PemInput[];
  tlsSecureContext: tls.SecureContext;
  tlsSniCallback: SniCallback;
}

/** An option of the library alone: what it accepts in words, and its default (none: not set). */
export interface LibraryOptionSpec {
  name: keyof TlsMaterialSettings;
  accepts: string;
  description: string;
}

/**
 * The library-only options, checked by the TLS layer (src/tls/material.ts) when the server is made.
 * Each is not set by default. reload() reads files again; what these give stays as given.
 */
export const LIBRARY_OPTION_SPECS: readonly LibraryOptionSpec[] = [
  {
    name: "tlsCert",
    accepts: "PEM text: a string or a Buffer",
    description:
      "The certificate chain in memory (server certificate first), instead of tlsCertPath; give tlsKey with it. Checked as a file is (key match, validity). reload() keeps it as given: it has no file to read again.",
  },
  {
    name: "tlsKey",
    accepts: "PEM text: a string or a Buffer",
    description: "The private key of tlsCert, in memory, unencrypted; instead of tlsKeyPath.",
  },
  {
    name: "tlsCa",
    accepts: "PEM text (a string or a Buffer) or a list of them",
    description:
      "The CAs client certificates are verified against, in memory, instead of tlsCaPath; clients must then present a valid certificate.",
  },
  {
    name: "tlsSecureContext",
    accepts: "a context made by tls.createSecureContext()",
    description:
      "A ready-made context, served as it is: its certificate, ciphers and session-ticket keys are its own, so none of tlsCertPath, tlsKeyPath, tlsCert, tlsKey, tlsCertCn, tlsCertSan, tlsPreset, tlsCiphers, tlsMinVersion, tlsTicketKeyRotation, tlsCaPath, tlsCa and tlsRequestCert may come with it. server.tls.certificate is then undefined, and reload() keeps it (make a new server to change it).",
  },
  {
    name: "tlsSniCallback",
    accepts: "a function (servername, callback), as Node's SNICallback",
    description:
      "Chooses the context for the name a client asks for (SNI), before tlsSniCertificates: calling back with no context falls back to those, then to the main certificate.",
  },
];
