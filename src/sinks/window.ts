/**
 * The HTTP sink's bounds on one delivery: a window of requests in flight that a delivery waits to enter
 * (first come, first served), and a deadline that aborts whatever the delivery waits for on the HTTP side.
 */

/** At most `size` holders at a time; the others wait in order, each until its signal aborts. */
export class InFlightWindow {
  #free: number;
  readonly #waiting: { enter: () => void }[] = [];

  constructor(readonly size: number) {
    this.#free = size;
  }

  /** Requests holding a place now. */
  get inFlight(): number {
    return this.size - this.#free;
  }

  /** Deliveries waiting for a place. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** The function that gives a place back, if one is free now and nobody waits; otherwise undefined. */
  tryEnter(): (() => void) | undefined {
    if (this.#free === 0 || this.#waiting.length > 0) return undefined;
    this.#free -= 1;
    return this.#leaver();
  }

  /** Resolves with the function that gives the place back; rejects with the signal's reason if it aborts first. */
  enter(signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    const leave = this.#leaver();
    if (this.#free > 0) {
      this.#free -= 1;
      return Promise.resolve(leave);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        enter: () => {
          signal.removeEventListener("abort", onAbort);
          resolve(leave);
        },
      };
      const onAbort = () => {
        this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  /** A leave function that works once: a place is never given back twice. */
  #leaver(): () => void {
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const next = this.#waiting.shift();
      if (next) next.enter();
      else this.#free += 1;
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
