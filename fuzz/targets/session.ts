/**
 * Fuzz target: one SMTP or LMTP session with no socket, fed arbitrary client bytes cut at random places.
 *
 * Input: [flags][more flags][client habits][split seed][server event][client bytes]. The split seed cuts
 * the bytes at random, line by line, or as a pipelining client sends them (see clientPieces). The server
 * event is what the connection driver may do in the middle of the dialogue: a command or data timeout, a
 * graceful or an immediate shutdown, after a piece chosen by the same byte, or nothing. The flags choose
 * SMTP or LMTP, the CRLF mode, PIPELINING, CHUNKING with BINARYMIME, 8BITMIME with SMTPUTF8, DSN, AUTH
 * (PLAIN, LOGIN, CRAM-MD5 and XOAUTH2 over plaintext, optional or required, with or without a per-address
 * failure limit), a peer trusted for XCLIENT, sync or async hooks, a buffered or a streamed message and
 * small limits; the habits a client that talks before the greeting, one that reads its replies slowly
 * (writes report backpressure and drain a turn later), and whether it half-closes or drops the connection
 * at the end.
 * STARTTLS is never offered: there is no TLS layer to hand the bytes to.
 *
 * Invariants, checked after every piece of input (a FuzzFinding otherwise; an exception escaping from
 * the session is a finding too):
 *   - no internal error: nothing is logged at "error" (where the session's catch-all reports itself);
 *   - every write is whole, well-formed replies (reply-syntax.ts);
 *   - memory is bounded: once idle, the session holds at most one unfinished command or SASL line, and a
 *     message handed over is within maxMessageSize;
 *   - a message reaches the message hook only after its end was sent (a <CRLF>.<CRLF>, or a BDAT ... LAST
 *     chunk), and every 250 for a message names one the hook accepted: once, or once per recipient in LMTP;
 *   - nothing runs after the session closed (QUIT's 221 included): no hook call and no write;
 *   - when the client's input ends, the session ends closed.
 */
import type { Readable } from "node:stream";
import type { SessionContext } from "../../src/protocol/context.js";
import { SmtpError } from "../../src/protocol/errors.js";
import type { SessionHooks } from "../../src/protocol/hooks.js";
import type { Awaitable } from "../../src/protocol/maybe-async.js";
import { type SessionConfig, type SessionTransport, SmtpSession } from "../../src/protocol/session.js";
import {
  MAX_SASL_LINE_OCTETS,
  SASL_MECHANISMS,
  type SaslCredentials,
  type SaslMechanismName,
} from "../../src/sasl/mechanism.js";
import { newContext, TEST_CONFIG } from "../../test/helpers/session-harness.js";
import { invariant } from "../finding.js";
import { checkReplies } from "../reply-syntax.js";
import { splitBytes } from "../split.js";

/** The one account onAuth accepts, so the fuzzer can reach authenticated sessions. */
const USER = "user";
const PASSWORD = "pass";
/** Text of the 250 the message hook asks for: each names its message, so a 250 can be traced to it. */
const QUEUED = /^250 2\.0\.0 queued as fuzz-(\d+)$/;
/** Lines after which a pipelining client waits for the replies (RFC 2920 3.1), and a message's end. */
const WAITS_AFTER = /^(?:EHLO|HELO|LHLO|DATA|NOOP|VRFY|EXPN|HELP|AUTH|XCLIENT|QUIT)\b|^\.\r?\n$/i;
/** A BDAT command that ends a message, loosely: every one the session could take is matched. */
const BDAT_LAST = /BDAT[ \t]+\+?\d+[ \t]+LAST/gi;

interface Scenario {
  config: SessionConfig;
  slowReader: boolean;
  xclientTrusted: boolean;
  asyncHooks: boolean;
  streamed: boolean;
  earlyTalker: boolean;
  halfClose: boolean;
  failureLimit: boolean;
}

function scenario(flags: number, more: number, habits: number): Scenario {
  const bit = (byte: number, n: number) => (byte & (1 << n)) !== 0;
  const authModes = ["forbidden", "optional", "required", "optional"] as const;
  const crlfModes = ["ensure", "leave", "strict", "ensure"] as const;
  return {
    config: {
      ...TEST_CONFIG,
      lmtp: bit(flags, 0),
      pipelining: !bit(flags, 1),
      crlfMode: crlfModes[(flags >> 2) & 3] ?? "ensure",
      chunking: !bit(more, 0),
      dsn: !bit(more, 1),
      internationalization: !bit(more, 2),
      heloStrict: bit(more, 5),
      auth: {
        mode: authModes[(flags >> 4) & 3] ?? "optional",
        mechanisms: SASL_MECHANISMS,
        overPlaintext: true,
        maxFailures: 3,
      },
      maxMessageSize: bit(more, 6) ? 64 : 4096,
      maxRecipients: 5,
      maxBadCommands: bit(more, 7) ? 3 : 20,
    },
    slowReader: bit(habits, 0),
    xclientTrusted: bit(flags, 6),
    asyncHooks: bit(flags, 7),
    streamed: bit(more, 3),
    earlyTalker: bit(habits, 1),
    halfClose: !bit(habits, 2),
    failureLimit: bit(more, 2) && bit(more, 1),
  };
}

/** What the client has done and the session has answered so far, for the invariants. */
class Observer {
  readonly sent: Buffer[] = [];
  closed = false;
  /** Messages the hook accepted: their number is the index + 1, the value their recipient count. */
  readonly accepted: number[] = [];
  /** How many 250s named each accepted message. */
  readonly answered = new Map<number, number>();
  /**
   * Broken invariants seen inside hooks and writes. They are kept, not thrown there: the session would
   * take a throw for a hook's refusal and answer it.
   */
  readonly broken: string[] = [];

  constructor(private readonly lmtp: boolean) {}

  expect(condition: boolean, message: string | (() => string)): void {
    if (!condition) this.broken.push(typeof message === "string" ? message : message());
  }

  /** A hook is about to run: the session must still be open. */
  hookRuns(name: string): void {
    this.expect(!this.closed, `${name} ran after the session closed`);
  }

  wrote(text: string): void {
    this.expect(!this.closed, () => `a write after the session closed: ${JSON.stringify(text)}`);
    try {
      checkReplies(text);
    } catch (error) {
      this.broken.push(String(error));
    }
    for (const line of text.split("\r\n")) {
      const queued = QUEUED.exec(line);
      if (queued) this.answerFor(Number(queued[1]));
      this.expect(!line.includes("message accepted"), "a 250 for a message the hook never accepted");
    }
  }

  private answerFor(message: number): void {
    const recipients = this.accepted[message - 1];
    this.expect(recipients !== undefined, `a 250 for message ${message}, which the hook never saw`);
    const count = (this.answered.get(message) ?? 0) + 1;
    this.answered.set(message, count);
    this.expect(
      count <= (this.lmtp ? (recipients ?? 0) : 1),
      `message ${message} was answered 250 ${count} times`,
    );
  }

  /** How many messages the client has ended so far, at most: DATA's end marks and BDAT LAST commands. */
  messageEndsSent(): number {
    const text = Buffer.concat(this.sent).toString("latin1");
    return text.split("\n.\r\n").length - 1 + (text.match(BDAT_LAST)?.length ?? 0);
  }
}

function hooksFor(scene: Scenario, seen: Observer): SessionHooks {
  const { config } = scene;
  /** Runs a hook body, as a promise when the scenario wants async hooks. */
  const hook =
    <A extends unknown[], R>(name: string, body: (...args: A) => R) =>
    (...args: A): Awaitable<Awaited<R>> => {
      seen.hookRuns(name);
      // An async body (the stream consumer) gives a promise either way, which the session awaits.
      const run = () => body(...args) as Awaited<R>;
      return scene.asyncHooks ? Promise.resolve().then(run) : run();
    };
  /** Addresses steer the hooks: the fuzzer finds these words in the dictionary. */
  const judge = (address: string) => {
    if (address.includes("reject")) throw SmtpError.code(550);
    if (address.includes("later")) throw SmtpError.code(451);
    if (address.includes("drop")) throw SmtpError.code(421);
  };
  const dataStart = (ctx: SessionContext) => {
    ctx.message.write("Received: from fuzz\r\n");
  };
  const insertedBytes = Buffer.byteLength("Received: from fuzz\r\nX-Fuzz: headers\r\n");
  return {
    onConnect: hook("onConnect", () => {}),
    onHelo: hook("onHelo", (_ctx: SessionContext, helo: string) => judge(helo)),
    onMailFrom: hook("onMailFrom", (_ctx: SessionContext, address: string) => judge(address)),
    onRcptTo: hook("onRcptTo", (_ctx: SessionContext, address: string) => judge(address)),
    onVrfy: hook("onVrfy", () => "Postmaster <postmaster@mx.test>"),
    onExpn: hook("onExpn", () => ["One <one@mx.test>", "Two <two@mx.test>"]),
    onMessageDataStart: hook("onMessageDataStart", dataStart),
    onMessageDataReceiving: hook("onMessageDataReceiving", (ctx: SessionContext) => {
      if (ctx.message.bytesize > 3000) throw SmtpError.code(552);
    }),
    onMessageDataHeaders: hook("onMessageDataHeaders", (ctx: SessionContext) => {
      ctx.message.write("X-Fuzz: headers\r\n");
    }),
    ...(scene.streamed
      ? {
          onMessageStream: hook("onMessageStream", async (_ctx: SessionContext, stream: Readable) => {
            let size = 0;
            try {
              for await (const chunk of stream) size += (chunk as Buffer).length;
            } catch {
              return; // the message was refused or abandoned: the session answers that
            }
            seen.expect(
              size <= config.maxMessageSize + insertedBytes,
              `a streamed message of ${size} bytes, over the limit`,
            );
          }),
        }
      : {}),
    onMessageData: hook("onMessageData", (ctx: SessionContext) => {
      seen.expect(
        seen.accepted.length < seen.messageEndsSent(),
        "a message reached the hook before the client ended it",
      );
      const size = ctx.message.data.length;
      seen.expect(
        size <= config.maxMessageSize + insertedBytes,
        `a message of ${size} bytes, over the limit`,
      );
      if (ctx.message.data.includes("REJECT")) throw SmtpError.code(554);
      const recipients = ctx.envelope.to;
      seen.accepted.push(recipients.length);
      const queued = `250 queued as fuzz-${seen.accepted.length}`;
      if (!config.lmtp) return queued;
      return recipients.map((to) => (to.includes("fail") ? SmtpError.code(550) : queued));
    }),
    onProcessLineUnknown: hook("onProcessLineUnknown", () => {}),
    onAuth: hook(
      "onAuth",
      (
        _ctx: SessionContext,
        _authz: string,
        user: string,
        _secret: string,
        _mechanism: SaslMechanismName,
        credentials: SaslCredentials,
      ) => {
        if (user !== USER || credentials.verifyPassword?.(PASSWORD) !== true) throw SmtpError.code(535);
      },
    ),
    log: (_ctx, severity, message) => {
      seen.expect(severity !== "error" && severity !== "fatal", () => `logged as an error: ${message}`);
    },
  };
}

/** A per-address AUTH failure limit in memory: blocked after 2 failures, checks run one at a time. */
function failureLimit(): NonNullable<SessionConfig["auth"]["addressLimit"]> {
  let failures = 0;
  let queue: Promise<unknown> = Promise.resolve();
  return {
    isBlocked: () => failures >= 2,
    record: () => ++failures >= 2,
    exclusive: (_ctx, check) => {
      const turn = queue.then(check, check);
      queue = turn.catch(() => {});
      return turn;
    },
  };
}

/**
 * The client's bytes in the pieces it sends, each answered before the next: with a seed whose two low
 * bits are set, as a pipelining client groups its commands; otherwise cut at random (splitBytes).
 */
function clientPieces(bytes: Buffer, seed: number): Buffer[] {
  if ((seed & 3) !== 3) return splitBytes(bytes, seed);
  const pieces: Buffer[] = [];
  let start = 0;
  for (let at = 0; at < bytes.length; ) {
    const lf = bytes.indexOf(10, at);
    const end = lf === -1 ? bytes.length : lf + 1;
    if (WAITS_AFTER.test(bytes.toString("latin1", at, end))) {
      pieces.push(bytes.subarray(start, end));
      start = end;
    }
    at = end;
  }
  if (start < bytes.length) pieces.push(bytes.subarray(start));
  return pieces;
}

/** What the connection driver does to the session besides feeding it, after the piece `after`. */
function serverEvent(byte: number): { after: number; act: (session: SmtpSession) => void } | null {
  const after = byte >> 2;
  switch (byte & 3) {
    case 0:
      return { after, act: (session) => session.timeout() };
    case 1:
      return { after, act: (session) => session.requestClose() };
    case 2:
      return { after, act: (session) => session.shutdownNow() };
    default:
      return null;
  }
}

export async function fuzz(data: Buffer): Promise<void> {
  if (data.length < 5) return;
  const scene = scenario(data[0] as number, data[1] as number, data[2] as number);
  if (scene.failureLimit) scene.config.auth = { ...scene.config.auth, addressLimit: failureLimit() };
  const seen = new Observer(scene.config.lmtp);
  let session: SmtpSession | null = null;
  const transport: SessionTransport = {
    write: (text) => {
      seen.wrote(text);
      if (!scene.slowReader) return true;
      // The socket's buffer is full: it drains a moment later, as a socket's "drain" event comes.
      setImmediate(() => session?.outputDrained());
      return false;
    },
    close: () => {
      seen.closed = true;
    },
    inputConsumed: () => {},
    commandCompleted: () => {},
    dataReceived: () => {},
    xclientTrusted: scene.xclientTrusted,
  };
  session = new SmtpSession(scene.config, hooksFor(scene, seen), transport, newContext());
  const lineLimit = Math.max(scene.config.maxCommandLineLength, MAX_SASL_LINE_OCTETS + 2);
  const pieces = clientPieces(data.subarray(5), data[3] as number);
  const event = serverEvent(data[4] as number);
  const check = () => {
    invariant(seen.broken.length === 0, () => seen.broken.join("; "));
    const buffered = session.bufferedInputBytes;
    invariant(buffered <= lineLimit, `${buffered} bytes buffered while idle`);
  };

  if (scene.earlyTalker && pieces[0]) session.receive(pieces.shift() as Buffer);
  await session.start();
  for (const [index, piece] of pieces.entries()) {
    seen.sent.push(piece);
    session.receive(piece);
    if (event?.after === index) event.act(session);
    await session.whenIdle();
    check();
  }
  if (scene.halfClose) session.inputEnded();
  else session.end();
  // inputEnded() closes once the last step is done, some turns of the event loop later.
  for (let turn = 0; turn < 1000 && !session.isClosed; turn++) await new Promise(setImmediate);
  check();
  invariant(session.isClosed, "the session is still open after the client's input ended");
}
