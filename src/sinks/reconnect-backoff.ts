/**
 * The broker sinks' reconnect delays: the first `min`, doubled each attempt up to `max`, jittered between
 * half and all of that, so that many instances do not reconnect in step.
 */
import { positiveInteger } from "./sink-options.js";

/** The reconnectDelay option of the broker sinks, checked; default 250 ms up to 10 s. */
export function reconnectDelay(option: { min: number; max: number } | undefined): {
  min: number;
  max: number;
} {
  const delay = option ?? { min: 250, max: 10_000 };
  const checked = {
    min: positiveInteger("reconnectDelay.min", delay.min, 250),
    max: positiveInteger("reconnectDelay.max", delay.max, 10_000),
  };
  if (checked.max < checked.min) throw new TypeError("Invalid option reconnectDelay: max is lower than min.");
  return checked;
}
export class ReconnectBackoff {
  #attempt = 0;

  constructor(private readonly delay: { min: number; max: number }) {}

  /** The delay before the next attempt, in milliseconds; each call counts one attempt. */
  next(): number {
    const { min, max } = this.delay;
    const ceiling = Math.min(max, min * 2 ** Math.min(this.#attempt, 20));
    this.#attempt += 1;
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  /** Connected: the next loss starts again at `min`. */
  reset(): void {
    this.#attempt = 0;
  }
}
