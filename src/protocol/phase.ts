/**
 * What a session reads its input as, each phase with what that reading needs: the message and its body
 * reader, the octets of a refused chunk still to drop, the AUTH exchange waiting for a response line.
 */
import type { AuthExchange } from "./auth-exchange.js";
import type { ChunkReader } from "./chunking.js";
import type { DataDecoder } from "./data.js";
import type { MessageReceiver } from "./message.js";

/** A message being received: by DATA up to its final dot, or by BDAT, chunk after chunk. */
export type IncomingMessage = DataMessage | BdatMessage;

export interface DataMessage {
  readonly via: "DATA";
  readonly receiver: MessageReceiver;
  readonly reader: DataDecoder;
}

export interface BdatMessage {
  readonly via: "BDAT";
  readonly receiver: MessageReceiver;
  readonly reader: ChunkReader;
  /** The size the current chunk's BDAT announced, for its 250. */
  chunkSize: number;
  /** The current chunk is the message's last (BDAT size LAST). */
  last: boolean;
}

export type Phase =
  /** Before the greeting: input is an early talker's. */
  | { readonly kind: "greeting" }
  | { readonly kind: "command" }
  /** The octets of a message: DATA up to <CRLF>.<CRLF>, or one BDAT chunk. */
  | { readonly kind: "body"; readonly message: IncomingMessage }
  /** The octets of a refused BDAT chunk, to drop. */
  | SkipChunkPhase
  /** The client's responses of a SASL exchange. */
  | { readonly kind: "auth"; readonly exchange: AuthExchange }
  /** Waiting for the TLS handshake after STARTTLS: no input is read. */
  | { readonly kind: "tls" }
  | { readonly kind: "closed" };

export interface SkipChunkPhase {
  readonly kind: "skip-chunk";
  /** Octets still to drop. */
  remaining: number;
}

export const GREETING: Phase = { kind: "greeting" };
export const COMMAND: Phase = { kind: "command" };
export const TLS: Phase = { kind: "tls" };
export const CLOSED: Phase = { kind: "closed" };
