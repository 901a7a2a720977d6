/**
 * The sinks' bounds on one delivery: a window of requests (or bytes) in flight that a delivery waits to
 * enter (first come, first served), and the HTTP sink's deadline that aborts whatever the delivery waits
 * for on the HTTP side.
 */

/**
 * At most `size` units held at a time (one per request, or bytes), each holder taking `weight` of them
 * (1 by default; one heavier than the whole window takes all of it). The others wait in order, first come
 * first served (a light one never passes a heavy one waiting), each until its signal aborts.
 */
export class InFlightWindow {
  #free: number;
  readonly #waiting: { weight: number; enter: () => void }[] = [];

  constructor(readonly size: number) {
    this.#free = size;
  }

  /** Units held now. */
  get inFlight(): number {
    return this.size - this.#free;
  }

  /** Deliveries waiting for a place. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** The function that gives the place back, if there is room now and nobody waits; otherwise undefined. */
  tryEnter(weight = 1): (() => void) | undefined {
    const units = Math.min(weight, this.size);
    if (this.#free < units || this.#waiting.length > 0) return undefined;
    this.#free -= units;
    return this.#leaver(units);
  }

  /** Resolves with the function that gives the place back; rejects with the signal's reason if it aborts first. */
  enter(signal: AbortSignal, weight = 1): Promise<() => void> {
    signal.throwIfAborted();
    const leave = this.tryEnter(weight);
    if (leave) return Promise.resolve(leave);
    const units = Math.min(weight, this.size);
    return new Promise((resolve, reject) => {
      const waiter = {
        weight: units,
        enter: () => {
          signal.removeEventListener("abort", onAbort);
          resolve(this.#leaver(units));
        },
      };
      const onAbort = () => {
        this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
        reject(signal.reason);
        this.#admit(); // the one behind may fit where this one did not
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  /** Lets in the waiters at the head of the line while they fit. */
  #admit(): void {
    for (let next = this.#waiting[0]; next && next.weight <= this.#free; next = this.#waiting[0]) {
      this.#free -= next.weight;
      this.#waiting.shift();
      next.enter();
    }
  }

  /** A leave function that works once: a place is never given back twice. */
  #leaver(units: number): () => void {
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.#free += units;
      this.#admit();
    };
  }
}

/** Thrown (as the abort reason) when a delivery's deadline passes. */
export class DeadlineExceeded extends Error {
  constructor(what: string) {
    super(what);
    this.name = "DeadlineExceeded";
  }
}

/**
 * A timer that aborts `ms` after it is armed. Arming a running timer leaves it running (the time already
 * spent counts); disarming stops it. The delivery disarms it only while it waits for the SMTP client,
 * whose own timeouts bound that wait. Its AbortSignal is made only when something asks for it (a wait for
 * a place in the window): a delivery that never waits pays for a timer, not for a signal and its listeners.
 */
export class Deadline {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;
  #onAbort: ((reason: unknown) => void) | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ms: number,
    private readonly describe: () => string,
  ) {}

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** Why it aborted (a DeadlineExceeded once the time is up), or undefined. */
  get reason(): unknown {
    return this.#reason;
  }

  get expired(): boolean {
    return this.#reason instanceof DeadlineExceeded;
  }

  /** `callback` gets the reason when it aborts (at once if it has): one callback, the last one given. */
  onAbort(callback: (reason: unknown) => void): void {
    this.#onAbort = callback;
    if (this.#aborted) callback(this.#reason);
  }

  arm(): void {
    if (this.#timer || this.#aborted) return;
    this.#timer = setTimeout(() => {
      this.#abort(new DeadlineExceeded(`${this.describe()} after ${this.ms} ms`));
    }, this.ms);
  }

  disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Aborts at once (the delivery failed for another reason) and stops the timer. */
  abort(reason: unknown): void {
    this.disarm();
    this.#abort(reason);
  }

  #abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
    this.#onAbort?.(reason);
  }
}
