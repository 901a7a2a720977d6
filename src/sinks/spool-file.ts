/**
 * The spool's file format: a MaildirStore message (docs/serve.md, "What is stored, and when") whose first line
 * after the trace headers carries what the trace headers do not, the message id and the session facts:
 *
 *     Return-Path: <sender@example.org>                 (MaildirStore's trace headers, UTF-8 as received)
 *     X-Envelope-To: <first-recipient@example.com>
 *     X-Envelope-To: <second-recipient@example.com>
 *     X-Mailgate-Spool: {"id":"...","session":{...}}    (JSON, every non-ASCII character \u-escaped)
 *     ...the message as received...
 *
 * So a spooled message is also a readable Maildir message, and SMTPUTF8 addresses are kept byte for byte.
 */
import { constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { parseEnvelopeHeaders } from "../store/maildir.js";
import { sessionFactsFrom } from "../store/session-facts.js";
import type { SessionFacts, StoreEnvelope } from "../store/store.js";

/** A spooled file is read, never followed: a symlink swapped in fails (ELOOP) and goes to refused/. */
const READ_NO_FOLLOW = constants.O_RDONLY | constants.O_NOFOLLOW;

const SPOOL_HEADER = "X-Mailgate-Spool: ";

/** The spool's envelope headers are read from at most this many bytes at the start of a file. */
const HEAD_MAX = 1024 * 1024;

/** A spooled file is read back in chunks of this size when it does not fit in its head. */
const READ_CHUNK = 64 * 1024;

/** An envelope with the id the spool keeps for it (given by the caller, or drawn by the spool). */
export type IdentifiedEnvelope = StoreEnvelope & { id: string };

/**
 * An id the spool can keep: a non-empty string without line breaks or other control characters (it
 * becomes a header of the sink's: AMQP's message-id, NATS's Nats-Msg-Id, the HTTP sink's).
 */
export function isSpoolableId(id: unknown): id is string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
  return typeof id === "string" && id !== "" && !/[\x00-\x1f\x7f]/.test(id);
}

/** The X-Mailgate-Spool line for `envelope`: ASCII only, one line (JSON escapes every control character). */
export function spoolHeader(envelope: IdentifiedEnvelope): Buffer {
  const json = JSON.stringify({ id: envelope.id, session: envelope.session ?? null }).replace(
    /[\u007f-\uffff]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return Buffer.from(`${SPOOL_HEADER}${json}\r\n`, "latin1");
}

/** A spooled message read back: its envelope as spooled, and its bytes as received (read lazily). */
export interface SpooledMessage {
  envelope: IdentifiedEnvelope;
  body: AsyncIterable<Buffer>;
}

/** Reads the envelope of the spooled file at `path`; throws if it is not one (or ENOENT if it is gone). */
export async function readSpooledMessage(path: string): Promise<SpooledMessage> {
  const file = await open(path, READ_NO_FOLLOW);
  let head: Buffer;
  let size: number;
  try {
    size = (await file.stat()).size;
    head = Buffer.allocUnsafe(Math.min(size, HEAD_MAX));
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    head = head.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
  const { envelope, bodyOffset } = parseEnvelopeHeaders(head);
  const lineEnd = head.indexOf("\r\n", bodyOffset);
  if (head.toString("latin1", bodyOffset, bodyOffset + SPOOL_HEADER.length) !== SPOOL_HEADER || lineEnd < 0) {
    throw new Error(
      `Not a spooled message: no ${SPOOL_HEADER.trim()} line within its first ${HEAD_MAX} bytes.`,
    );
  }
  const { id, session } = spooledFacts(head.toString("latin1", bodyOffset + SPOOL_HEADER.length, lineEnd));
  const start = lineEnd + 2;
  const identified: IdentifiedEnvelope = { ...envelope, id };
  if (session) identified.session = session;
  const body = head.length === size ? wholeBody(head.subarray(start)) : fileBody(path, start);
  return { envelope: identified, body };
}

/**
 * The id and session facts of an X-Mailgate-Spool line, checked: a file planted in the spool or damaged
 * there must not reach the sink with facts of the wrong types, nor with an id that holds a line break or
 * another control character (it becomes a header: AMQP's message-id, NATS's Nats-Msg-Id, the HTTP sink's).
 */
function spooledFacts(json: string): { id: string; session: SessionFacts | null } {
  const malformed = (why: string) =>
    new Error(`Not a spooled message: its ${SPOOL_HEADER.trim()} line ${why}.`);
  let facts: unknown;
  try {
    facts = JSON.parse(json);
  } catch {
    throw malformed("is not JSON");
  }
  if (typeof facts !== "object" || facts === null) throw malformed("is not a JSON object");
  const { id, session } = facts as { id?: unknown; session?: unknown };
  if (!isSpoolableId(id)) throw malformed("has no id, or one with control characters");
  try {
    return { id, session: sessionFactsFrom(session) };
  } catch (error) {
    throw malformed(`is wrong: ${(error as Error).message}`);
  }
}

async function* wholeBody(body: Buffer): AsyncGenerator<Buffer> {
  if (body.length > 0) yield body;
}

/** The file from `start` to its end, opened only when the first chunk is asked for. */
async function* fileBody(path: string, start: number): AsyncGenerator<Buffer> {
  const file = await open(path, READ_NO_FOLLOW);
  try {
    yield* readFrom(file, start);
  } finally {
    await file.close();
  }
}

/** The bytes of an open file from `position` to its end, in fresh Buffers (a sink may keep them). */
export async function* readFrom(
  file: FileHandle,
  position: number,
  end = Number.POSITIVE_INFINITY,
): AsyncGenerator<Buffer> {
  for (let at = position; at < end; ) {
    const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK, end - at));
    const { bytesRead } = await file.read(chunk, 0, chunk.length, at);
    if (bytesRead === 0) return;
    at += bytesRead;
    yield chunk.subarray(0, bytesRead);
  }
}

/**
 * Where a MaildirStore file name (`<seconds>.M<microseconds>P<pid>Q<counter>R...`) sorts: by the time it
 * was stored, then by its counter. A name of another form sorts after every one of this form.
 */
export function spoolOrder(name: string): [number, number, number] {
  const match = /^(\d+)\.M(\d+)P\d+Q(\d+)/.exec(name);
  if (!match) return [Number.POSITIVE_INFINITY, 0, 0];
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

export function compareSpoolOrder(a: [number, number, number], b: [number, number, number]): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}
