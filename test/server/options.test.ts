/**
 * SmtpServer options: every invalid value throws at construction with one sentence naming the option,
 * the defaults are the documented ones, hooks work the same given as options or by subclassing, and
 * logging reaches onLogging and loggers as configured, never with message bodies.
 */
import assert from "node:assert/strict";
import { hostname } from "node:os";
import type { Readable } from "node:stream";
import { type TestContext, test } from "node:test";
import type { EsmtpParams } from "../../src/protocol/commands.js";
import type { SessionContext } from "../../src/protocol/context.js";
import type { Severity, SmtpServerHooks } from "../../src/protocol/hooks.js";
import { HOOK_NAMES } from "../../src/server/hook-binding.js";
import { defaultLogger } from "../../src/server/logger.js";
import { LIBRARY_OPTION_SPECS } from "../../src/server/option-table.js";
import { type Logger, OPTION_SPECS, type ServerSettings } from "../../src/server/options.js";
import { SmtpServer, type SmtpServerOptions } from "../../src/server/server.js";
import { RawClient, silentLogger, waitFor } from "../helpers/clients.js";

/** One sentence: a single line ending with a period, and no sentence break outside quoted values. */
function assertOneSentence(message: string): void {
  assert.doesNotMatch(message, /\n/, `one line: ${message}`);
  assert.match(message, /\.$/, `ends with a period: ${message}`);
  const unquoted = message.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  assert.doesNotMatch(unquoted, /[.;:!?]\s+[A-Z]/, `a single sentence: ${message}`);
}

function assertRejected(options: Record<string, unknown>, ...patterns: RegExp[]): void {
  assert.throws(
    () => new SmtpServer(options as SmtpServerOptions),
    (error: Error) => {
      assertOneSentence(error.message);
      for (const pattern of patterns) assert.match(error.message, pattern);
      return true;
    },
    `expected ${JSON.stringify(options)} to be rejected`,
  );
}

const INVALID: readonly [Record<string, unknown>, ...RegExp[]][] = [
  [{ crlfMode: "bogus" }, /\bcrlfMode\b/, /ensure, leave, strict/],
  [{ crlfMode: "ENSURE" }, /\bcrlfMode\b/],
  [{ maxConnections: 5, maxProcessings: 10 }, /\bmaxConnections\b/, /\bmaxProcessings\b/, /at least/],
  [{ maxProcessings: 1001 }, /\bmaxConnections\b/, /\bmaxProcessings\b/],
  [{ ports: "99999" }, /\bports\b/, /0 to 65535/],
  [{ ports: 70000 }, /\bports\b/, /0 to 65535/],
  [{ ports: -1 }, /\bports\b/],
  [{ ports: "" }, /\bports\b/],
  [{ ports: "2525,,2526" }, /\bports\b/],
  [{ ports: "2525," }, /\bports\b/],
  [{ ports: "smtp" }, /\bports\b/],
  [{ ports: "25.5" }, /\bports\b/],
  [{ ports: "2525:" }, /\bports\b/],
  [{ ports: {} }, /\bports\b/],
  [{ ports: true }, /\bports\b/],
  [{ hosts: "" }, /\bhosts\b/],
  [{ hosts: " , " }, /\bhosts\b/],
  [{ hosts: "127.0.0.1:2525" }, /\bhosts\b/],
  [{ hosts: "[127.0.0.1]" }, /\bhosts\b/, /IPv6/],
  [{ hosts: "exa$mple.test" }, /\bhosts\b/],
  [{ hosts: 42 }, /\bhosts\b/],
  [{ hosts: null }, /\bhosts\b/],
  [{ hostname: "" }, /\bhostname\b/],
  [{ hostname: "mx\r\nRCPT TO:<x@y>" }, /\bhostname\b/],
  [{ hostname: 7 }, /\bhostname\b/],
  [{ maxProcessings: 0 }, /\bmaxProcessings\b/, /integer of at least 1/],
  [{ maxProcessings: 1.5 }, /\bmaxProcessings\b/, /integer/],
  [{ maxProcessings: "10" }, /\bmaxProcessings\b/, /integer/],
  [{ maxProcessings: Number.NaN }, /\bmaxProcessings\b/],
  [{ maxConnections: Number.POSITIVE_INFINITY }, /\bmaxConnections\b/],
  [{ maxConnections: 0 }, /\bmaxConnections\b/],
  [{ ioCmdTimeout: 0 }, /\bioCmdTimeout\b/, /at least 1/],
  [{ ioCmdTimeout: -300 }, /\bioCmdTimeout\b/],
  [{ minDataRate: 0 }, /\bminDataRate\b/],
  [{ reverseLookupTimeout: 0 }, /\breverseLookupTimeout\b/],
  [{ ioBufferChunkSize: 10 }, /\bioBufferChunkSize\b/, /at least 1024/],
  [{ ioBufferMaxSize: 100 }, /\bioBufferMaxSize\b/, /at least 1024/],
  [{ maxMessageSize: -1 }, /\bmaxMessageSize\b/, /at least 0/],
  [{ maxRecipients: 0 }, /\bmaxRecipients\b/],
  [{ maxBadCommands: -1 }, /\bmaxBadCommands\b/],
  [{ maxCommandLineLength: 100 }, /\bmaxCommandLineLength\b/, /at least 512/],
  [{ doDnsReverseLookup: "yes" }, /\bdoDnsReverseLookup\b/, /true or false/],
  [{ pipeliningExtension: 1 }, /\bpipeliningExtension\b/, /true or false/],
  [{ internationalizationExtensions: null }, /\binternationalizationExtensions\b/],
  [{ loggerSeverity: "verbose" }, /\bloggerSeverity\b/, /debug, info, warn, error, fatal/],
  [{ loggerSeverity: "DEBUG" }, /\bloggerSeverity\b/],
  [{ logger: { debug() {}, info() {} } }, /\blogger\b/, /\bwarn\b/],
  [{ logger: { debug() {}, info() {}, warn() {}, error: "no" } }, /\blogger\b/, /\berror\b/],
  [{ logger: null }, /\blogger\b/],
  [{ logger: "console" }, /\blogger\b/],
  [{ ports: "2525", tlsPorts: "465" }, /\btlsPorts\b/, /port 465 is not one of ports \(2525\)/],
  [{ ports: "2525, 2526", proxyPorts: "2526:2527" }, /\bproxyPorts\b/, /port 2527 is not one of ports/],
];

for (const [options, ...patterns] of INVALID) {
  test(`invalid option ${JSON.stringify(options)} throws at construction`, () => {
    assertRejected(options, ...patterns);
  });
}

test("a hook option that is not a function throws naming the hook", () => {
  for (const name of HOOK_NAMES) {
    for (const value of ["yes", 1, {}, null, true]) {
      assertRejected({ [name]: value }, new RegExp(`\\b${name}\\b`), /function/);
    }
  }
});

test("every option of the table rejects a value of the wrong type, naming itself", () => {
  for (const spec of OPTION_SPECS) {
    // null is "not set" for an option whose default is null.
    for (const value of [{}, [[]], ...(spec.default === null ? [] : [null])]) {
      assertRejected({ [spec.name]: value }, new RegExp(`\\b${spec.name}\\b`));
    }
  }
});

test("every library-only option (TLS material) rejects a value of the wrong type, naming itself", () => {
  assert.deepEqual(
    LIBRARY_OPTION_SPECS.map((spec) => spec.name),
    ["tlsCert", "tlsKey", "tlsCa", "tlsSecureContext", "tlsSniCallback"],
  );
  for (const spec of LIBRARY_OPTION_SPECS) {
    for (const value of [{}, 42, null]) {
      assertRejected({ [spec.name]: value }, new RegExp(`\\b${spec.name}\\b`));
    }
  }
});

test("valid edge values are accepted", () => {
  const accepted: SmtpServerOptions[] = [
    { ports: 0 },
    { ports: "0" },
    { ports: "65535" },
    { ports: "2525:3535, 4545" },
    { ports: [2525, 2526] },
    { hosts: "*" },
    { hosts: "127.0.0.1, ::1, [::1]" },
    { hosts: ["127.0.0.1", "::1"] },
    { hosts: "localhost" },
    { maxMessageSize: 0 },
    { maxBadCommands: 0 },
    { maxCommandLineLength: 512 },
    { ioBufferChunkSize: 1024, ioBufferMaxSize: 1024 },
    { maxProcessings: 1, maxConnections: 1 },
    { maxProcessings: 5000, maxConnections: 5000 },
    { crlfMode: "leave" },
    { crlfMode: "strict" },
    { loggerSeverity: "fatal", logger: console },
    { logger: silentLogger },
  ];
  for (const options of accepted) {
    assert.doesNotThrow(() => new SmtpServer(options), JSON.stringify(options));
  }
  assert.equal(new SmtpServer({ ports: 0 }).settings.ports, "0");
  assert.equal(new SmtpServer({ ports: [2525, 2526] }).settings.ports, "2525,2526");
});

test("the defaults are the documented ones", () => {
  const server = new SmtpServer();
  const expected: ServerSettings = {
    ports: "2525",
    hosts: "127.0.0.1",
    hostname: hostname(),
    maxProcessings: 100,
    maxConnections: 1000,
    maxConnectionsPerIp: 0,
    greetingDelay: 0,
    crlfMode: "ensure",
    doDnsReverseLookup: false,
    reverseLookupTimeout: 1500,
    ioCmdTimeout: 30_000,
    minDataRate: 500,
    ioBufferChunkSize: 64 * 1024,
    bufferMessagesUpTo: 0,
    ioBufferMaxSize: 1024 * 1024,
    pipeliningExtension: true,
    internationalizationExtensions: true,
    chunkingExtension: true,
    dsnExtension: false,
    requireTlsExtension: true,
    maxMessageSize: 25 * 1024 * 1024,
    maxRecipients: 100,
    maxBadCommands: 20,
    maxRecipientRefusals: 20,
    heloStrict: false,
    maxCommandLineLength: 512,
    lmtp: false,
    socketPath: "",
    socketMode: null,
    socketReplaceStale: false,
    tlsMode: "forbidden",
    tlsPorts: "",
    tlsCertPath: "",
    tlsKeyPath: "",
    tlsCertCn: "",
    tlsCertSan: "",
    tlsPreset: "advancedPlus",
    tlsCiphers: "",
    tlsMinVersion: "",
    tlsCaPath: "",
    tlsSniCertificates: "",
    tlsRequestCert: false,
    tlsTicketKeyRotation: 12 * 60 * 60 * 1000,
    proxyPorts: "",
    proxyTrusted: "127.0.0.1, ::1",
    xclientTrusted: "",
    authMode: "forbidden",
    authMechanisms: "PLAIN LOGIN",
    authOverPlaintext: false,
    maxAuthFailures: 5,
    maxAuthFailuresPerIp: 10,
    authFailureWindow: 600_000,
    loggerSeverity: "info",
  };
  assert.deepEqual({ ...server.settings }, expected);
  for (const spec of OPTION_SPECS) {
    const documented = typeof spec.default === "function" ? spec.default() : spec.default;
    assert.equal(server.settings[spec.name], documented, spec.name);
  }
  assert.deepEqual(Object.keys(expected).sort(), OPTION_SPECS.map((spec) => spec.name).sort());
  assert.ok(Object.isFrozen(server.settings));
  assert.equal(server.logger, defaultLogger);
  assert.deepEqual(server.ports, [2525]);
  assert.deepEqual(server.hosts, ["127.0.0.1"]);
  assert.deepEqual(server.addresses, []);
  assert.equal(server.isStopped, true);
  assert.equal(server.isShuttingDown, false);
  assert.equal(server.connections, 0);
  assert.equal(server.processings, 0);
});

test("the defaults take effect on the wire (SIZE, PIPELINING, 8BITMIME, SMTPUTF8)", async (t) => {
  const server = new SmtpServer({ ports: "0", hostname: "mx.test", logger: silentLogger });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  const client = await RawClient.greeted(server.ports[0] ?? 0);
  assert.equal(
    await client.command("EHLO client.test"),
    "250-mx.test at your service\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250-SIZE 26214400\r\n250-ENHANCEDSTATUSCODES\r\n250 HELP\r\n",
  );
  client.close();
});

// ---- hooks: as options and by subclassing ----

type Events = string[];

/** One implementation of every hook, recording what fires; used both ways below. */
function recordingHooks(events: Events): Required<Omit<SmtpServerHooks, "onLogging" | "onAuth">> {
  return {
    onConnect(ctx: SessionContext) {
      events.push(`connect ${ctx.server.remoteIp}`);
      ctx.server.localResponse = "custom welcome";
      ctx.server.heloResponse = "custom greeting";
    },
    onDisconnect() {
      events.push("disconnect");
    },
    onHelo(_ctx: SessionContext, helo: string) {
      events.push(`helo ${helo}`);
    },
    onMailFrom(_ctx: SessionContext, address: string, params: EsmtpParams) {
      events.push(`mail ${address} ${JSON.stringify(params)}`);
      return address.toLowerCase();
    },
    onRcptTo(_ctx: SessionContext, address: string) {
      events.push(`rcpt ${address}`);
      return address.toLowerCase();
    },
    onVrfy(_ctx: SessionContext, argument: string) {
      events.push(`vrfy ${argument}`);
      return `Bob <${argument}@y.test>`;
    },
    onExpn(_ctx: SessionContext, argument: string) {
      events.push(`expn ${argument}`);
      return ["a@y.test", "b@y.test"];
    },
    onMessageDataStart(ctx: SessionContext) {
      events.push("data start");
      ctx.message.write("Received: by mx.test\r\n");
    },
    onMessageDataReceiving(ctx: SessionContext) {
      // Once per chunk of data: how the bytes are split into chunks is the network's business.
      if (events.at(-1) !== "receiving") events.push("receiving");
      assert.ok(ctx.message.bytesize > 0);
    },
    onMessageDataHeaders(ctx: SessionContext) {
      events.push("headers");
      ctx.message.write("X-Hooked: yes\r\n");
    },
    async onMessageStream(ctx: SessionContext, stream: Readable) {
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      events.push(`stream ${JSON.stringify(Buffer.concat(chunks).toString())}`);
      assert.equal(ctx.message.data.length, 0);
    },
    onMessageData(ctx: SessionContext) {
      events.push(`data ${ctx.envelope.from} ${ctx.envelope.to.join(",")} ${ctx.message.bytesize}`);
      return "Ok: queued as HOOKED";
    },
    onProcessLineUnknown(_ctx: SessionContext, line: string) {
      events.push(`unknown ${line}`);
    },
  };
}

class SubclassedServer extends SmtpServer {
  private readonly hooks: ReturnType<typeof recordingHooks>;
  constructor(
    options: SmtpServerOptions,
    private readonly events: Events,
  ) {
    super(options);
    this.hooks = recordingHooks(events);
  }
  override onConnect(ctx: SessionContext) {
    return this.hooks.onConnect(ctx);
  }
  override onDisconnect(ctx: SessionContext) {
    return this.hooks.onDisconnect(ctx);
  }
  override onHelo(ctx: SessionContext, helo: string) {
    return this.hooks.onHelo(ctx, helo);
  }
  override onMailFrom(ctx: SessionContext, address: string, params: EsmtpParams) {
    return this.hooks.onMailFrom(ctx, address, params);
  }
  override onRcptTo(ctx: SessionContext, address: string, params: EsmtpParams) {
    return this.hooks.onRcptTo(ctx, address, params);
  }
  override onVrfy(ctx: SessionContext, argument: string) {
    return this.hooks.onVrfy(ctx, argument);
  }
  override onExpn(ctx: SessionContext, argument: string) {
    return this.hooks.onExpn(ctx, argument);
  }
  override onMessageDataStart(ctx: SessionContext) {
    return this.hooks.onMessageDataStart(ctx);
  }
  override onMessageDataReceiving(ctx: SessionContext) {
    return this.hooks.onMessageDataReceiving(ctx);
  }
  override onMessageDataHeaders(ctx: SessionContext) {
    return this.hooks.onMessageDataHeaders(ctx);
  }
  override onMessageStream(ctx: SessionContext, stream: Readable) {
    return this.hooks.onMessageStream(ctx, stream);
  }
  override onMessageData(ctx: SessionContext) {
    return this.hooks.onMessageData(ctx);
  }
  override onProcessLineUnknown(ctx: SessionContext, line: string) {
    return this.hooks.onProcessLineUnknown(ctx, line);
  }
  override onLogging(ctx: SessionContext | null, severity: Severity, message: string, error?: unknown) {
    if (message.startsWith("Listening on")) this.events.push("log start");
    super.onLogging(ctx, severity, message, error);
  }
}

/** A session touching every hook; returns the transcript of replies. */
async function exerciseHooks(port: number): Promise<string[]> {
  const client = await RawClient.connect(port);
  const transcript = [await client.reply()];
  for (const line of [
    "EHLO client.test",
    "VRFY bob",
    "EXPN staff",
    "XFOO bar",
    "MAIL FROM:<Alice@X.test> BODY=8BITMIME",
    "RCPT TO:<Bob@Y.test>",
    "DATA",
  ]) {
    transcript.push(await client.command(line));
  }
  client.write("Subject: hooks\r\n\r\nhello\r\n..dot\r\n.\r\n");
  transcript.push(await client.reply());
  transcript.push(await client.command("QUIT"));
  await client.untilEnd();
  return transcript;
}

const EXPECTED_TRANSCRIPT = [
  "220 custom welcome\r\n",
  "250-custom greeting\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250-SIZE 26214400\r\n250-ENHANCEDSTATUSCODES\r\n250 HELP\r\n",
  "250 2.1.5 Bob <bob@y.test>\r\n",
  "250-2.1.5 a@y.test\r\n250 2.1.5 b@y.test\r\n",
  "500 5.5.2 Syntax error, command unrecognised\r\n",
  "250 2.1.0 Ok\r\n",
  "250 2.1.5 Ok\r\n",
  '354 Enter message, ending with "." on a line by itself\r\n',
  "250 2.0.0 Ok: queued as HOOKED\r\n",
  "221 2.0.0 mx.test Service closing transmission channel\r\n",
];

function expectedEvents(): string[] {
  const message = "Received: by mx.test\r\nSubject: hooks\r\nX-Hooked: yes\r\n\r\nhello\r\n.dot\r\n";
  // bytesize counts the client's bytes, as the seed's: not the two header lines the hooks inserted.
  const fromClient = "Subject: hooks\r\n\r\nhello\r\n.dot\r\n";
  return [
    "log start",
    "connect 127.0.0.1",
    "helo client.test",
    "vrfy bob",
    "expn staff",
    "unknown XFOO bar",
    'mail Alice@X.test {"BODY":"8BITMIME"}',
    "rcpt Bob@Y.test",
    "data start",
    "receiving",
    "headers",
    "receiving",
    `stream ${JSON.stringify(message)}`,
    `data alice@x.test bob@y.test ${fromClient.length}`,
    "disconnect",
  ];
}

async function runHookServer(t: TestContext, server: SmtpServer, events: Events): Promise<void> {
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  assert.deepEqual(await exerciseHooks(server.ports[0] ?? 0), EXPECTED_TRANSCRIPT);
  await waitFor(() => events.includes("disconnect"), "onDisconnect");
  assert.deepEqual(events, expectedEvents());
}

const HOOK_SERVER_OPTIONS: SmtpServerOptions = {
  ports: "0",
  hostname: "mx.test",
  logger: silentLogger,
  loggerSeverity: "fatal",
};

test("hooks given as options fire with the seed's semantics", async (t) => {
  const events: Events = [];
  const server = new SmtpServer({
    ...HOOK_SERVER_OPTIONS,
    ...recordingHooks(events),
    onLogging(_ctx, _severity, message) {
      if (message.startsWith("Listening on")) events.push("log start");
    },
  });
  await runHookServer(t, server, events);
});

test("hooks given by subclassing fire the same events", async (t) => {
  const events: Events = [];
  await runHookServer(t, new SubclassedServer(HOOK_SERVER_OPTIONS, events), events);
});

test("a hook option wins over the class's method, and `this` is the server", async (t) => {
  let seen: unknown = null;
  const server: SmtpServer = new SubclassedServer(
    {
      ...HOOK_SERVER_OPTIONS,
      onHelo(this: SmtpServer) {
        seen = this;
        throw new Error("refused by the option hook");
      },
    },
    [],
  );
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  const client = await RawClient.greeted(server.ports[0] ?? 0);
  const reply = await client.command("EHLO client.test");
  assert.match(reply, /^[45]\d\d /);
  assert.doesNotMatch(reply, /refused by the option hook/, "hook errors stay internal");
  assert.equal(seen, server);
  client.close();
});

// ---- logging ----

interface LogLine {
  level: "debug" | "info" | "warn" | "error";
  line: string;
}

function recordingLogger(lines: LogLine[]): Logger {
  return {
    debug: (line) => lines.push({ level: "debug", line }),
    info: (line) => lines.push({ level: "info", line }),
    warn: (line) => lines.push({ level: "warn", line }),
    error: (line) => lines.push({ level: "error", line }),
  };
}

test("onLogging receives every event, with the session's context when there is one", async (t) => {
  const events: { ctx: SessionContext | null; severity: Severity; message: string }[] = [];
  const lines: LogLine[] = [];
  const server = new SmtpServer({
    ports: "0",
    hostname: "mx.test",
    logger: recordingLogger(lines),
    loggerSeverity: "error",
    onLogging(ctx, severity, message) {
      events.push({ ctx, severity, message });
    },
  });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  const port = server.ports[0] ?? 0;
  const client = await RawClient.greeted(port);
  client.write("GET / HTTP/1.1\r\n");
  assert.match(await client.reply(), /^421 /);
  await client.untilEnd();

  const start = events.find((event) => event.message.startsWith("Listening on"));
  assert.ok(start, JSON.stringify(events));
  assert.equal(start.ctx, null);
  assert.equal(start.severity, "info");
  assert.equal(start.message, `Listening on 127.0.0.1:${port}`, "the real port, not 0");
  const connect = events.find((event) => event.message.startsWith("Client connect"));
  assert.ok(connect);
  assert.equal(connect.severity, "debug");
  assert.equal(connect.ctx?.server.remoteIp, "127.0.0.1");
  assert.equal(connect.ctx?.server.localPort, port);
  const http = events.find((event) => event.message.includes("HTTP request"));
  assert.equal(http?.severity, "warn");
  assert.equal(http?.ctx, connect.ctx);
  assert.deepEqual(lines, [], "an onLogging option replaces the default writer");
});

async function logWithSeverity(t: TestContext, loggerSeverity: Severity): Promise<LogLine[]> {
  const lines: LogLine[] = [];
  const server = new SmtpServer({
    ports: "0",
    hostname: "mx.test",
    logger: recordingLogger(lines),
    loggerSeverity,
    onMailFrom() {
      throw new Error("database down");
    },
  });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  const port = server.ports[0] ?? 0;
  const client = await RawClient.greeted(port);
  assert.match(await client.command("EHLO client.test"), /^250 /m);
  const refused = await client.command("MAIL FROM:<a@x.test>");
  assert.match(refused, /^[45]\d\d /);
  assert.doesNotMatch(refused, /database/);
  client.write("GET / HTTP/1.1\r\n");
  assert.match(await client.reply(), /^421 /);
  await client.untilEnd();
  await server.stop();
  return lines;
}

test("a logger receives lines at or above loggerSeverity only", async (t) => {
  const warn = await logWithSeverity(t, "warn");
  assert.deepEqual(
    warn.map((entry) => entry.level),
    ["error", "warn"],
    JSON.stringify(warn),
  );
  assert.match(warn[0]?.line ?? "", /^\[127\.0\.0\.1:\d+\] hook failed: Error: database down$/);
  assert.match(warn[1]?.line ?? "", /^\[127\.0\.0\.1:\d+\] HTTP request on the SMTP port/);

  const error = await logWithSeverity(t, "error");
  assert.deepEqual(
    error.map((entry) => entry.level),
    ["error"],
  );
  assert.deepEqual(await logWithSeverity(t, "fatal"), []);

  const info = await logWithSeverity(t, "info");
  const levels = new Set(info.map((entry) => entry.level));
  assert.deepEqual([...levels].sort(), ["error", "info", "warn"]);
  assert.ok(info.some((entry) => /^Listening on 127\.0\.0\.1:[1-9][0-9]*$/.test(entry.line)));

  const debug = await logWithSeverity(t, "debug");
  assert.ok(
    debug.some((entry) => entry.level === "debug" && /Client connect from 127\.0\.0\.1:/.test(entry.line)),
  );
  assert.ok(debug.some((entry) => entry.level === "debug" && /<<< EHLO client\.test$/.test(entry.line)));
  assert.ok(
    debug.some((entry) => entry.level === "debug" && />>> 250-mx\.test at your service/.test(entry.line)),
  );
  // A multi-line reply is one event per line, each with its ">>> " (and so with the logger's timestamp).
  assert.ok(debug.some((entry) => entry.level === "debug" && /\] >>> 250 HELP$/.test(entry.line)));
  assert.ok(
    debug.every((entry) => !/[\r\n]/.test(entry.line)),
    "no event spans lines",
  );
});

test("message bodies never appear in the logs, even at debug severity", async (t) => {
  const MARKER = "S3CR3T-B0DY-MARK3R";
  const lines: LogLine[] = [];
  let fail = false;
  const server = new SmtpServer({
    ports: "0",
    hostname: "mx.test",
    logger: recordingLogger(lines),
    loggerSeverity: "debug",
    maxMessageSize: 4096,
    onMessageData(ctx) {
      assert.ok(ctx.message.data.includes(MARKER));
      if (fail) throw new Error("store failed");
    },
  });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  const client = await RawClient.greeted(server.ports[0] ?? 0);
  assert.match(await client.command("EHLO client.test"), /^250 /m);
  const body = `Subject: ${MARKER}\r\nX-Marker: ${MARKER}\r\n\r\n${MARKER}\r\n.${MARKER}\r\nMAIL FROM:<${MARKER}@x.test>\r\n`;
  const send = async (message: string, expected: RegExp) => {
    assert.match(await client.command("MAIL FROM:<a@x.test>"), /^250 /);
    assert.match(await client.command("RCPT TO:<b@y.test>"), /^250 /);
    assert.match(await client.command("DATA"), /^354 /);
    client.write(`${message}.\r\n`);
    assert.match(await client.reply(), expected);
  };
  await send(body, /^250 /); // accepted
  fail = true;
  await send(body, /^451 /); // the hook fails: an error is logged
  await send(body.repeat(200), /^552 /); // too big: refused after the end of data
  assert.match(await client.command("QUIT"), /^221 /);
  await client.untilEnd();
  await server.stop();

  assert.ok(
    lines.some((entry) => entry.line.endsWith("<<< DATA")),
    "the dialogue is logged",
  );
  assert.ok(lines.some((entry) => entry.line.includes("hook failed: Error: store failed")));
  const leaks = lines.filter((entry) => entry.line.includes(MARKER));
  assert.deepEqual(leaks, [], "no log line carries message content");
});

test("a misspelt option is refused with the closest known name", () => {
  assert.throws(
    () => new SmtpServer({ maxConnection: 5 } as SmtpServerOptions),
    /^TypeError: Unknown option maxConnection; did you mean maxConnections\?$/,
  );
  assert.throws(
    () => new SmtpServer({ bogus: 1 } as SmtpServerOptions),
    /^TypeError: Unknown option bogus\.$/,
  );
});

test("an optional hook set after construction is used (a class field or an assignment)", async (t) => {
  const server = new SmtpServer({ ports: 0, logger: silentLogger, loggerSeverity: "fatal" });
  const streamed: Buffer[] = [];
  server.onMessageStream = async (_ctx, stream) => {
    for await (const chunk of stream) streamed.push(chunk as Buffer);
  };
  server.onVrfy = (_ctx, argument) => `<${argument}@verified.test>`;
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  const client = await RawClient.greeted(server.ports[0] as number);
  await client.command("EHLO c");
  assert.equal(await client.command("VRFY someone"), "250 2.1.5 <someone@verified.test>\r\n");
  await client.command("MAIL FROM:<a@x.test>");
  await client.command("RCPT TO:<b@y.test>");
  await client.command("DATA");
  client.write("Subject: s\r\n\r\nstreamed\r\n.\r\n");
  assert.equal(await client.reply(), "250 2.0.0 Ok: message accepted\r\n");
  assert.equal(Buffer.concat(streamed).toString(), "Subject: s\r\n\r\nstreamed\r\n");
  client.close();
});

test("maxConnectionsPerIp: the connection beyond it from one address gets 421, others are served", async (t) => {
  const server = new SmtpServer({
    ports: 0,
    maxConnectionsPerIp: 2,
    logger: silentLogger,
    loggerSeverity: "fatal",
  });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  const port = server.ports[0] as number;
  const first = await RawClient.greeted(port);
  const second = await RawClient.greeted(port);
  const third = await RawClient.connect(port);
  assert.match(await third.untilEnd(), /^421 4\.7\.0 .*Too many connections from your address/);
  first.close();
  await first.closed;
  await waitFor(() => server.connections === 1, "the first connection to be released");
  const again = await RawClient.greeted(port);
  assert.match(await again.command("NOOP"), /^250 /);
  again.close();
  second.close();
});
