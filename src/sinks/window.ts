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
 * A timer that aborts its signal `ms` after it is armed. Arming a running timer leaves it running (the
 * time already spent counts); disarming stops it. The delivery disarms it only while it waits for the
 * SMTP client, whose own timeouts bound that wait.
 */
export class Deadline {
  readonly #controller = new AbortController();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ms: number,
    private readonly describe: () => string,
  ) {}

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get expired(): boolean {
    return this.#controller.signal.reason instanceof DeadlineExceeded;
  }

  arm(): void {
    if (this.#timer || this.#controller.signal.aborted) return;
    this.#timer = setTimeout(() => {
      this.#controller.abort(new DeadlineExceeded(`${this.describe()} after ${this.ms} ms`));
    }, this.ms);
  }

  disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Aborts at once (the delivery failed for another reason) and stops the timer. */
  abort(reason: unknown): void {
    this.disarm();
    this.#controller.abort(reason);
  }
}
