/**
 * Shared by the fault tests (test/hostile/faults.test.ts) and the soak (soak/run.ts): `mailgate serve` as
 * a child process, a seeded random source, messages with a unique id in their Subject, a load generator
 * that keeps a ledger of what every client saw, and a reader that checks every file of a Maildir.
 *
 * The ledger is what the data-safety checks compare the Maildir against: for each message, whether its
 * final dot was written (only then may it be stored at all) and whether the client saw its 250 (then it
 * must be stored, exactly once, byte-exact).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { parseEnvelopeHeaders } from "../../src/store/maildir.js";
import { RawClient } from "../helpers/clients.js";

/** The mailgate command, built (this file runs as build/test/hostile/harness.js). */
export const MAIN = new URL("../../src/cli/main.js", import.meta.url).pathname;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---- mailgate serve as a child process -----------------------------------------------------------

export interface Served {
  child: ChildProcess;
  pid: number;
  port: number;
  /** The last 256 KiB the process printed (stdout and stderr). */
  output(): string;
  /** Lines "Stored ..." printed so far (one per acknowledged message). */
  storedLines(): number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `mailgate serve --ports 0 --maildir <maildir> ...args` and waits until it listens. */
export async function startServe(maildir: string, args: readonly string[] = []): Promise<Served> {
  const child = spawn(process.execPath, [MAIN, "serve", "--ports", "0", "--maildir", maildir, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let stored = 0;
  let partialLine = "";
  const collect = (chunk: Buffer) => {
    const text = chunk.toString("utf8");
    // Count whole lines only: a chunk may end in the middle of one.
    const lines = (partialLine + text).split("\n");
    partialLine = lines.pop() ?? "";
    for (const line of lines) if (line.includes("] Stored ")) stored++;
    output += text;
    if (output.length > 512 * 1024) output = output.slice(-256 * 1024);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${output}`)), 15_000);
    const check = () => {
      const match = /serving SMTP on 127\.0\.0\.1:(\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        child.stdout?.off("data", check);
        resolve(Number(match[1]));
      }
    };
    child.stdout?.on("data", check);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`serve exited before listening:\n${output}`));
    });
  });
  return {
    child,
    pid: child.pid ?? 0,
    port,
    output: () => output,
    storedLines: () => stored,
    exited,
  };
}

/** VmRSS of a process in bytes, from /proc/<pid>/status. */
export async function readRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!match) throw new Error(`/proc/${pid}/status has no VmRSS line`);
  return Number(match[1]) * 1024;
}

// ---- seeded randomness and messages ----------------------------------------------------------------

export { seededRandom } from "../helpers/seeded-random.js";

/**
 * Lines of message text (CRLF ends, some starting with "." so dot-stuffing is exercised, a few
 * 8-bit bytes) from which message bodies are cut: one pool, so that big messages cost no generation.
 */
export class TextPool {
  readonly text: Buffer;

  constructor(size: number, random: () => number) {
    const alphabet = Buffer.from(
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-_=+/<>\t",
    );
    const text = Buffer.alloc(size);
    let at = 0;
    while (at < size - 200) {
      const length = Math.floor(random() * 120);
      const start = at;
      for (let i = 0; i < length; i++) text[at++] = alphabet[Math.floor(random() * alphabet.length)] ?? 0x61;
      const roll = random();
      if (roll < 0.03)
        text[start] = 0x2e; // "." at the start of a line: stuffed on the wire
      else if (roll < 0.035 && length > 1) text[start + 1] = 0xe9; // an 8-bit byte
      text[at++] = 0x0d;
      text[at++] = 0x0a;
    }
    while (at < size) {
      text[at++] = 0x0d;
      text[at++] = 0x0a;
    }
    this.text = text.subarray(0, size - (size % 2));
  }

  /** About `size` bytes of whole lines, from a random place in the pool. */
  lines(size: number, random: () => number): Buffer {
    const text = this.text;
    const room = Math.max(0, text.length - size - 256);
    const from = Math.floor(random() * room);
    const start = from === 0 ? 0 : text.indexOf("\r\n", from) + 2;
    const end = text.indexOf("\r\n", Math.min(start + size, text.length - 2)) + 2;
    return text.subarray(start, end);
  }
}

/** A message whose Subject is `id` (the key by which a stored message is matched to what was sent). */
export function buildMessage(id: string, body: Buffer): Buffer {
  const head = `Subject: ${id}\r\nMessage-ID: <${id}@hostile.test>\r\nFrom: <sender@x.test>\r\nTo: <rcpt@y.test>\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, "latin1"), body]);
}

/** The DATA content on the wire: leading dots doubled, then the end of data. `message` ends with CRLF. */
export function dotStuff(message: Buffer): Buffer {
  const parts: Buffer[] = [];
  let from = 0;
  if (message[0] === 0x2e) parts.push(Buffer.from("."));
  for (let at = message.indexOf("\r\n.", 0); at !== -1; at = message.indexOf("\r\n.", at + 3)) {
    parts.push(message.subarray(from, at + 2), Buffer.from("."));
    from = at + 2;
  }
  parts.push(message.subarray(from), Buffer.from(".\r\n"));
  return Buffer.concat(parts);
}

export function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

// ---- the ledger and the load generator -------------------------------------------------------------

/**
 * What the client knows about one message:
 * - "planned": MAIL/RCPT/DATA not (all) accepted, no content sent;
 * - "partial": some content written, not the final dot (may never be stored);
 * - "dot": the final dot written, no reply (the connection died, or the client itself dropped it);
 * - "acked": the client saw 250 after the data (must be stored exactly once);
 * - "refused": the client saw another reply after the data (must not be stored).
 */
export type MessageState = "planned" | "partial" | "dot" | "acked" | "refused";

export interface LedgerEntry {
  id: string;
  state: MessageState;
  /** The client dropped the connection itself (on purpose) while in this state. */
  droppedByClient: boolean;
  size: number;
  hash: string;
  /** The message itself, kept when the ledger is asked to (small runs); else only size and hash. */
  bytes: Buffer | null;
  reply: string;
}

export interface LoadOptions {
  port: number;
  sessions: number;
  random: () => number;
  /** The next message to send (its unique id and bytes, CRLF-ended), or null when there are no more. */
  nextMessage: () => { id: string; message: Buffer } | null;
  /** Keep each message's bytes in the ledger (else only its hash). */
  keepBytes?: boolean;
  /** Transactions per connection before QUIT and a new connection, drawn in [min, max]. */
  perConnection?: [number, number];
  /** Probability that MAIL, RCPT and DATA go in one write. */
  pipelining?: number;
  /** Probability that a message's content is written in two writes with a short pause in between. */
  split?: number;
  /** Probability of dropping the connection in the middle of the content. */
  dropMidData?: number;
  /** Probability of dropping the connection right after the final dot, before reading the reply. */
  dropAfterDot?: number;
  /** Milliseconds a dropping client idles first: mid-DATA between its partial content and the drop,
   * after the dot between the 354 and its content (0: no pause). */
  dropPause?: number;
  /** Checked between sessions: true ends the load (e.g. the server died). */
  shouldStop?: () => boolean;
  /** Stop a session (do not reconnect) when the server closes on it or refuses a connection. */
  stopWhenServerGone?: boolean;
  /** Called after each acknowledged message. */
  onAck?: () => void;
  /** The ledger to fill (so that a caller can watch it live); a new one by default. */
  ledger?: Map<string, LedgerEntry>;
}

export interface LoadResult {
  ledger: Map<string, LedgerEntry>;
  /** Connections the server closed unexpectedly, or that failed to open. */
  connectionFailures: number;
  /** Replies other than those a healthy transaction gets, by first line (e.g. 421 on shutdown). */
  unexpectedReplies: Map<string, number>;
  /** How each session that ended early ended: its last reply's first line, "(closed)" or "connect: <code>". */
  sessionEnds: string[];
}

/**
 * Runs `sessions` concurrent SMTP sessions until nextMessage() runs dry (or, with stopWhenServerGone,
 * until the server goes away), recording in a ledger what each client saw for each message.
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const {
    port,
    random,
    keepBytes = false,
    perConnection = [1, 20],
    pipelining = 0.5,
    split = 0.3,
    dropMidData = 0,
    dropAfterDot = 0,
    dropPause = 0,
    stopWhenServerGone = false,
    shouldStop = () => false,
  } = options;
  const ledger = options.ledger ?? new Map<string, LedgerEntry>();
  const result: LoadResult = {
    ledger,
    connectionFailures: 0,
    unexpectedReplies: new Map(),
    sessionEnds: [],
  };
  let exhausted = false;
  const unexpected = (reply: string | null) => {
    const key = reply === null ? "(connection closed)" : (reply.split("\r\n")[0] ?? "");
    result.unexpectedReplies.set(key, (result.unexpectedReplies.get(key) ?? 0) + 1);
  };

  /** One session: returns false when the load should stop for this worker. */
  const session = async (): Promise<boolean> => {
    let client: RawClient;
    try {
      client = await RawClient.connect(port);
    } catch (error) {
      result.connectionFailures++;
      if (stopWhenServerGone) {
        result.sessionEnds.push(`connect: ${(error as NodeJS.ErrnoException).code}`);
        return false;
      }
      await sleep(20);
      return true;
    }
    const serverGone = (reply: string | null): boolean => {
      unexpected(reply);
      result.sessionEnds.push(reply === null ? "(closed)" : (reply.split("\r\n")[0] ?? ""));
      client.drop();
      if (!stopWhenServerGone) result.connectionFailures++;
      return !stopWhenServerGone;
    };
    const greeting = await client.nextReply(60_000);
    if (!greeting?.startsWith("220 ")) return serverGone(greeting);
    await client.send("EHLO load.test\r\n");
    const ehlo = await client.nextReply(60_000);
    if (!ehlo?.startsWith("250")) return serverGone(ehlo);

    const [min, max] = perConnection;
    const transactions = min + Math.floor(random() * (max - min + 1));
    for (let n = 0; n < transactions; n++) {
      const next = options.nextMessage();
      if (next === null) {
        exhausted = true;
        break;
      }
      const entry: LedgerEntry = {
        id: next.id,
        state: "planned",
        droppedByClient: false,
        size: next.message.length,
        hash: sha256(next.message),
        bytes: keepBytes ? next.message : null,
        reply: "",
      };
      ledger.set(entry.id, entry);
      const commands = ["MAIL FROM:<sender@x.test>\r\n", "RCPT TO:<rcpt@y.test>\r\n", "DATA\r\n"];
      const expected = ["250 ", "250 ", "354 "];
      if (random() < pipelining) {
        await client.send(commands.join(""));
        for (const code of expected) {
          const reply = await client.nextReply(60_000);
          if (!reply?.startsWith(code)) {
            entry.reply = reply ?? "";
            return serverGone(reply);
          }
        }
      } else {
        for (const [i, command] of commands.entries()) {
          await client.send(command);
          const reply = await client.nextReply(60_000);
          if (!reply?.startsWith(expected[i] ?? "")) {
            entry.reply = reply ?? "";
            return serverGone(reply);
          }
        }
      }
      const wire = dotStuff(next.message);
      const roll = random();
      // A client about to drop right after its dot may idle first, as one that drops mid-DATA does after
      // its partial content (dropPause): the drop then hits a session whose store is under way.
      if (dropPause > 0 && roll >= dropMidData && roll < dropMidData + dropAfterDot) await sleep(dropPause);
      if (roll < dropMidData) {
        entry.state = "partial";
        await client.send(wire.subarray(0, Math.floor(random() * (wire.length - 3))));
        if (dropPause > 0) await sleep(dropPause);
        entry.droppedByClient = true;
        client.drop(random() < 0.5);
        return true;
      }
      if (random() < split) {
        const cut = Math.floor(random() * (wire.length - 3));
        entry.state = "partial";
        await client.send(wire.subarray(0, cut));
        await sleep(1 + Math.floor(random() * 5));
        await client.send(wire.subarray(cut));
      } else {
        entry.state = "partial";
        await client.send(wire);
      }
      entry.state = "dot";
      if (roll < dropMidData + dropAfterDot) {
        entry.droppedByClient = true;
        client.drop(random() < 0.5);
        return true;
      }
      const reply = await client.nextReply(60_000);
      entry.reply = reply ?? "";
      if (reply === null) return serverGone(reply);
      if (reply.startsWith("250 ")) {
        entry.state = "acked";
        options.onAck?.();
      } else {
        entry.state = "refused";
        return serverGone(reply);
      }
      // On a graceful stop the 421 follows the 250 at once: see it here rather than at the next MAIL.
      if (client.ended || /^421 /m.test(client.pending)) {
        const end = await client.nextReply(1000);
        return serverGone(end);
      }
    }
    await client.send("QUIT\r\n");
    const bye = await client.nextReply(60_000);
    if (!bye?.startsWith("221 ")) return serverGone(bye);
    client.drop();
    return true;
  };

  const worker = async () => {
    while (!exhausted && !shouldStop() && (await session())) {}
  };
  await Promise.all(Array.from({ length: options.sessions }, () => worker()));
  return result;
}

// ---- reading a Maildir back --------------------------------------------------------------------------

export interface StoredFile {
  name: string;
  /** The message id from the Subject, or null when the file could not be parsed. */
  id: string | null;
  /** The bytes after the trace headers and the Received header: what the client sent. */
  clientBytes: Buffer;
  /** Why the file is not a complete, well-formed stored message; "" when it is. */
  problem: string;
}

/** Reads and checks one file of new/: its S= size, the trace headers, the Received header. */
export function checkStoredFile(name: string, file: Buffer): StoredFile {
  const problems: string[] = [];
  const sizeField = /,S=(\d+)(?::2,.*)?$/.exec(name);
  if (!sizeField) problems.push("no S= size in the name");
  else if (Number(sizeField[1]) !== file.length) {
    problems.push(`S=${sizeField[1]} but the file has ${file.length} bytes`);
  }
  let clientBytes: Buffer = Buffer.alloc(0);
  let id: string | null = null;
  try {
    const body = file.subarray(parseEnvelopeHeaders(file).bodyOffset);
    const text = body.toString("latin1", 0, Math.min(body.length, 4096));
    if (!text.startsWith("Received: from ")) throw new Error("no Received header after the envelope");
    const end = text.search(/\r\n(?![\t ])/); // end of the folded Received header
    if (end < 0) throw new Error("the Received header does not end");
    clientBytes = body.subarray(end + 2);
    const subject = /^Subject: (\S+)\r\n/.exec(clientBytes.toString("latin1", 0, 200));
    if (!subject) throw new Error("no Subject id at the start of the message");
    id = subject[1] ?? null;
  } catch (error) {
    problems.push((error as Error).message);
  }
  return { name, id, clientBytes, problem: problems.join("; ") };
}

/** Every file in `maildir`/new, checked (read with bounded concurrency). */
export async function readMaildirNew(maildir: string, concurrency = 8): Promise<StoredFile[]> {
  const names = (await readdir(join(maildir, "new"))).sort();
  const files: StoredFile[] = [];
  let next = 0;
  const reader = async () => {
    while (next < names.length) {
      const name = names[next++] as string;
      files.push(checkStoredFile(name, await readFile(join(maildir, "new", name))));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, reader));
  return files;
}

/** Names and sizes of the files left in `maildir`/tmp. */
export async function listTmp(maildir: string): Promise<{ name: string; size: number }[]> {
  const names = await readdir(join(maildir, "tmp"));
  const files = await Promise.all(
    // A delivery may rename or remove its file between readdir and stat: such a file is not left over.
    names.map(async (name) => {
      const info = await stat(join(maildir, "tmp", name)).catch(() => null);
      return info ? { name, size: info.size } : null;
    }),
  );
  return files.filter((file) => file !== null);
}

export interface Verdict {
  /** Files in new/ (all of them, complete or not). */
  stored: number;
  /** Acknowledged messages not in new/. */
  lost: string[];
  /** Ids stored more than once. */
  duplicates: string[];
  /** Files that are not a complete message byte-identical to one that was sent (by id). */
  corrupt: string[];
  /** Stored messages whose final dot the client never wrote, or that were refused. */
  storedUnexpectedly: string[];
  /** Stored messages whose 250 the client did not see (its own drop, or the server died first). */
  storedAckNotSeen: number;
  /** Ledger counts by state. */
  states: Record<MessageState, number>;
}

/**
 * The data-safety verdict over a ledger and the files of new/: every acknowledged message stored
 * exactly once with identical bytes; nothing stored that the client did not complete; nothing broken.
 */
export function judge(ledger: Map<string, LedgerEntry>, files: readonly StoredFile[]): Verdict {
  const verdict: Verdict = {
    stored: files.length,
    lost: [],
    duplicates: [],
    corrupt: [],
    storedUnexpectedly: [],
    storedAckNotSeen: 0,
    states: { planned: 0, partial: 0, dot: 0, acked: 0, refused: 0 },
  };
  const copies = new Map<string, number>();
  for (const file of files) {
    const entry = file.id === null ? undefined : ledger.get(file.id);
    if (file.problem !== "" || entry === undefined || file.id === null) {
      verdict.corrupt.push(`${file.name}: ${file.problem || `unknown id ${file.id}`}`);
      continue;
    }
    copies.set(file.id, (copies.get(file.id) ?? 0) + 1);
    const same = entry.bytes
      ? entry.bytes.equals(file.clientBytes)
      : file.clientBytes.length === entry.size && sha256(file.clientBytes) === entry.hash;
    if (!same) verdict.corrupt.push(`${file.name}: the bytes of ${file.id} differ from what was sent`);
    if (entry.state !== "dot" && entry.state !== "acked") {
      verdict.storedUnexpectedly.push(
        `${file.id} (${entry.state}${entry.reply ? `, ${entry.reply.trim()}` : ""})`,
      );
    }
    if (entry.state === "dot") verdict.storedAckNotSeen++;
  }
  for (const [id, count] of copies) if (count > 1) verdict.duplicates.push(`${id} x${count}`);
  for (const entry of ledger.values()) {
    verdict.states[entry.state]++;
    if (entry.state === "acked" && !copies.has(entry.id)) verdict.lost.push(entry.id);
  }
  return verdict;
}
