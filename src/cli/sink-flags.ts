/**
 * `mailgate serve --sink URL` and the flags that shape the sink: which broker or endpoint receives the
 * messages instead of the Maildir, and how. Parsing only; src/cli/open-sink.ts builds the sink.
 *
 * Secrets never need to be on the command line (where `ps` shows them): the URL may come from the
 * environment (MAILGATE_SINK) and the password, token or signing secret from a file (--sink-secret-file)
 * or the environment (MAILGATE_SINK_SECRET).
 */
import { natsSinkOptionsFromUrl } from "../sinks/nats-url.js";
import { UsageError, wholeNumber } from "./flag-values.js";

/** The sink families, by URL scheme. */
export type SinkKind = "amqp" | "http" | "nats";

const KIND_BY_SCHEME: Record<string, SinkKind> = {
  "amqp:": "amqp",
  "amqps:": "amqp",
  "http:": "http",
  "https:": "http",
  "nats:": "nats",
  "tls:": "nats",
};

const ALL_KINDS: readonly SinkKind[] = ["amqp", "http", "nats"];

export interface SinkFlags {
  kind: SinkKind;
  /** The URL as given (it may hold a password: never print it; see redactedSinkUrl). */
  url: URL;
  /** Where the secret comes from, if from anywhere. */
  secret: { file: string } | { env: string } | undefined;
  /** True when the URL itself holds a password (and came from the command line). */
  passwordOnCommandLine: boolean;
  caFile: string | undefined;
  publishTimeout: number | undefined;
  window: number | undefined;
  exchange: string | undefined;
  routingKey: string | undefined;
  declareQueue: string | undefined;
  /** --sink-stage-dir: where messages past bufferMessagesUpTo are received whole before the sink's turn. */
  stageDirectory: string | undefined;
  /** --sink-window-bytes: bytes of staged messages the sink may hold at once. */
  windowBytes: number | undefined;
  /** --spool DIR and its bounds: outages are spooled there instead of answered 451. */
  spool: { directory: string; maxBytes: number | undefined; maxMessages: number | undefined } | undefined;
}

interface SinkFlagSpec {
  flag: string;
  kind: "string" | "integer";
  /** The sink kinds it applies to; given with another kind, it is a usage error. */
  kinds: readonly SinkKind[];
  value: string;
  help: string;
}

/** Every --sink* flag: parsed, validated and listed in --help from here. */
export const SINK_FLAG_SPECS: readonly SinkFlagSpec[] = [
  {
    flag: "sink",
    kind: "string",
    kinds: ALL_KINDS,
    value: "URL",
    help: "Hand every message to this sink instead of the Maildir, and answer 250 only once it holds it: amqp://user@host/vhost or amqps://... (RabbitMQ), nats://host:4222?stream=MAIL&subject=mail.{domain} or tls://... (NATS JetStream, options as query parameters), http://... or https://... (a webhook). Also read from MAILGATE_SINK (default: none, the Maildir).",
  },
  {
    flag: "sink-secret-file",
    kind: "string",
    kinds: ALL_KINDS,
    value: "FILE",
    help: "The sink's secret, read from FILE (one final newline is dropped): the password of the URL's user (amqp, nats), the NATS token when the URL names no user, or the HTTP signing secret (at least 16 bytes; required for http). Also read from MAILGATE_SINK_SECRET (default: none).",
  },
  {
    flag: "sink-ca-file",
    kind: "string",
    kinds: ALL_KINDS,
    value: "FILE",
    help: "PEM CA certificates that the sink's TLS server certificate must chain to, for amqps://, tls:// (NATS) and https:// (default: Node's CA list).",
  },
  {
    flag: "sink-publish-timeout",
    kind: "integer",
    kinds: ALL_KINDS,
    value: "MS",
    help: "Milliseconds a message waits for the broker's confirm or the endpoint's answer (and for a place in the window) before 451; lower than --io-cmd-timeout (default: 10000).",
  },
  {
    flag: "sink-window",
    kind: "integer",
    kinds: ALL_KINDS,
    value: "N",
    help: "Messages in flight to the sink at most; further sessions wait (default: 256 for amqp and nats, 16 for http).",
  },
  {
    flag: "sink-exchange",
    kind: "string",
    kinds: ["amqp"],
    value: "NAME",
    help: 'The exchange to publish to; "" is the default exchange, where the routing key names a queue (required for amqp).',
  },
  {
    flag: "sink-routing-key",
    kind: "string",
    kinds: ["amqp"],
    value: "TEMPLATE",
    help: "The routing key; {domain} stands for the first recipient's domain, lower-cased (default: {domain}).",
  },
  {
    flag: "sink-declare-queue",
    kind: "string",
    kinds: ["amqp"],
    value: "NAME",
    help: "Quick start: declare the exchange (durable, topic) and a durable quorum queue NAME bound to it with # on every connect (default: declare nothing).",
  },
  {
    flag: "sink-stage-dir",
    kind: "string",
    kinds: ALL_KINDS,
    value: "DIR",
    help: "Where a message larger than --buffer-messages-up-to is received whole, in a private directory made at start and removed at exit, before the sink reads it: a slow client then holds disk space, never a place in the sink's window or the message in memory. Each file is deleted once its delivery has settled (default: the system's temporary directory, $TMPDIR or /tmp).",
  },
  {
    flag: "sink-window-bytes",
    kind: "integer",
    kinds: ALL_KINDS,
    value: "N",
    help: "Bytes of messages larger than --buffer-messages-up-to the sink may hold at once (RabbitMQ and NATS read each into memory to publish it); further ones wait in their staging files, first come first served, up to --sink-publish-timeout, then 451. One larger than N goes alone (default: 134217728).",
  },
  {
    flag: "spool",
    kind: "string",
    kinds: ALL_KINDS,
    value: "DIR",
    help: "A local spool (a fsynced Maildir) for outages: a message the sink cannot take now (unreachable, no confirm in time) is stored there, answered 250 and forwarded later, oldest first, with its id; a refusal is still 451. With it, a sink unreachable at start is a warning, not an exit (default: none, outages get 451).",
  },
  {
    flag: "spool-max-bytes",
    kind: "integer",
    kinds: ALL_KINDS,
    value: "N",
    help: "Bytes the spool may hold; beyond, 451 (default: 1073741824).",
  },
  {
    flag: "spool-max-messages",
    kind: "integer",
    kinds: ALL_KINDS,
    value: "N",
    help: "Messages the spool may hold; beyond, 451 (default: 100000).",
  },
];

/** Environment variables read for the sink; the flags win over them. */
export const SINK_ENV = { url: "MAILGATE_SINK", secret: "MAILGATE_SINK_SECRET" } as const;

/** The sink flags' entries for util.parseArgs. */
export function sinkParseArgsOptions(): Record<string, { type: "string" }> {
  return Object.fromEntries(SINK_FLAG_SPECS.map((spec) => [spec.flag, { type: "string" as const }]));
}

/** The sink the flags and environment ask for, or undefined when none (the Maildir then stores). */
export function parseSinkFlags(
  values: Record<string, string | boolean | undefined>,
  env: NodeJS.ProcessEnv,
): SinkFlags | undefined {
  const given = (flag: string) => {
    const value = values[flag];
    return typeof value === "string" ? value : undefined;
  };
  const fromFlag = given("sink");
  const text = fromFlag ?? env[SINK_ENV.url];
  if (text === undefined || text === "") {
    const stray = SINK_FLAG_SPECS.find((spec) => spec.flag !== "sink" && given(spec.flag) !== undefined);
    if (stray) throw new UsageError(`--${stray.flag} needs --sink URL (or ${SINK_ENV.url}).`);
    return undefined;
  }
  const where = fromFlag === undefined ? SINK_ENV.url : "--sink";
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // The text may hold a password: never repeat it.
    throw new UsageError(
      `Invalid value for ${where}: not a URL; use amqp://user@host/vhost, amqps://..., nats://host:port?stream=..., tls://..., http://... or https://....`,
    );
  }
  const kind = KIND_BY_SCHEME[url.protocol];
  if (!kind) {
    throw new UsageError(
      `Invalid value for ${where}: the scheme ${url.protocol} is not one mailgate can hand mail to; use amqp:, amqps:, nats:, tls:, http: or https:.`,
    );
  }
  if (kind === "http" && (url.username || url.password)) {
    throw new UsageError(
      `Invalid value for ${where}: an http(s) sink URL cannot hold credentials; the requests are signed with --sink-secret-file.`,
    );
  }
  if (kind === "nats") {
    try {
      natsSinkOptionsFromUrl(url.href); // its query parameters, checked now
    } catch (error) {
      throw new UsageError(
        `${(error as Error).message.replace(/^Invalid NATS URL/, `Invalid value for ${where}`)}`,
      );
    }
  }
  for (const spec of SINK_FLAG_SPECS) {
    if (given(spec.flag) !== undefined && !spec.kinds.includes(kind)) {
      throw new UsageError(`--${spec.flag} does not apply to a ${url.protocol}// sink.`);
    }
  }
  const secretFile = given("sink-secret-file");
  if (secretFile === "") throw new UsageError("Invalid value for --sink-secret-file: it needs a file path.");
  const secret =
    secretFile !== undefined
      ? { file: secretFile }
      : env[SINK_ENV.secret] !== undefined
        ? { env: SINK_ENV.secret }
        : undefined;
  if (kind === "http" && secret === undefined) {
    throw new UsageError(
      `An http(s) sink signs its requests: give the secret with --sink-secret-file FILE or ${SINK_ENV.secret}.`,
    );
  }
  if (kind === "amqp" && secret !== undefined && url.username === "") {
    throw new UsageError(
      `The sink secret is the password of the URL's user: name the user in it (amqp://user@host/vhost).`,
    );
  }
  const exchange = given("sink-exchange");
  if (kind === "amqp" && exchange === undefined) {
    throw new UsageError(
      'An amqp sink needs --sink-exchange NAME (--sink-exchange="" for the default exchange).',
    );
  }
  const stageDirectory = given("sink-stage-dir");
  if (stageDirectory === "") {
    throw new UsageError("Invalid value for --sink-stage-dir: it needs a directory path.");
  }
  const spoolDirectory = given("spool");
  if (spoolDirectory === "") throw new UsageError("Invalid value for --spool: it needs a directory path.");
  for (const flag of ["spool-max-bytes", "spool-max-messages"]) {
    if (given(flag) !== undefined && spoolDirectory === undefined)
      throw new UsageError(`--${flag} needs --spool DIR.`);
  }
  return {
    kind,
    url,
    secret,
    passwordOnCommandLine: fromFlag !== undefined && url.password !== "",
    caFile: given("sink-ca-file"),
    publishTimeout: optionalWholeNumber("sink-publish-timeout", given("sink-publish-timeout")),
    window: optionalWholeNumber("sink-window", given("sink-window")),
    exchange,
    routingKey: given("sink-routing-key"),
    declareQueue: given("sink-declare-queue"),
    stageDirectory,
    windowBytes: optionalWholeNumber("sink-window-bytes", given("sink-window-bytes")),
    spool:
      spoolDirectory === undefined
        ? undefined
        : {
            directory: spoolDirectory,
            maxBytes: optionalWholeNumber("spool-max-bytes", given("spool-max-bytes")),
            maxMessages: optionalWholeNumber("spool-max-messages", given("spool-max-messages")),
          },
  };
}

/** The URL without its password, for logs and messages. */
export function redactedSinkUrl(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password) copy.password = "***";
  return copy.href;
}

/** The --help lines of the sink flags. */
export function sinkHelpLines(): string[] {
  return SINK_FLAG_SPECS.flatMap((spec) => [`  --${spec.flag} ${spec.value}`, `      ${spec.help}`]);
}

function optionalWholeNumber(flag: string, value: string | undefined): number | undefined {
  return value === undefined ? undefined : wholeNumber(flag, value, 1);
}
