/**
 * What the spool knows of its sink: "down" from a SinkUnavailable until the sink answers again (a message
 * taken, or refused: either way it is reachable). While it is down, live deliveries go straight to the
 * spool instead of waiting for a failure they can expect; the forwarder keeps trying with backoff, and its
 * first success brings them back to the sink. When nothing is left to forward (the message that found
 * the sink down could not be spooled), a live delivery tries the sink again `recheckAfter` ms after the
 * last failure seen.
 */
import type { Logger } from "../server/options.js";

export type SinkState = "up" | "down";

export class SinkHealth {
  readonly #recheckAfter: number;
  readonly #logger: Logger;
  /** The spool's name and depth for the log lines. */
  readonly #describe: () => string;
  #downSince: number | undefined;
  #lastFailure = 0;
  #lastAnswer = 0;

  constructor(recheckAfter: number, logger: Logger, describe: () => string) {
    this.#recheckAfter = recheckAfter;
    this.#logger = logger;
    this.#describe = describe;
  }

  get state(): SinkState {
    return this.#downSince === undefined ? "up" : "down";
  }

  /** Whether a live delivery should go straight to the spool. */
  get skipSink(): boolean {
    return this.#downSince !== undefined && Date.now() - this.#lastFailure < this.#recheckAfter;
  }

  /** The sink answered SinkUnavailable (`why`: its log text). */
  failed(why: string): void {
    this.#lastFailure = Date.now();
    if (this.#downSince !== undefined) return;
    this.#downSince = this.#lastFailure;
    this.#logger.warn(
      `${this.#describe()}: the sink is unavailable (${why}); spooling messages until it is back`,
    );
  }

  /** When the sink last answered (Date.now()), 0 if never. */
  get lastAnswer(): number {
    return this.#lastAnswer;
  }

  /** The sink answered (took a message, or refused one). */
  answered(): void {
    this.#lastAnswer = Date.now();
    if (this.#downSince === undefined) return;
    const seconds = ((Date.now() - this.#downSince) / 1000).toFixed(1);
    this.#downSince = undefined;
    this.#logger.info(`${this.#describe()}: the sink is back after ${seconds} s; forwarding the spool`);
  }
}
