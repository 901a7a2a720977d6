/**
 * Many deadlines on one timer: a binary min-heap of items by the time they are due, and one Node timer
 * armed for the earliest. A connection then costs a heap slot (two array entries and its index) rather
 * than a Timeout object of its own (about 200 bytes live, as much again allocated each time it is armed).
 */

/** Something that can wait in a DeadlineQueue. */
export interface Deadline {
  /** Where it is in its queue, -1 when it is not queued. Only the queue changes it. */
  queueIndex: number;
  /** Its time came: it has left the queue, and may be scheduled again. */
  onDue(): void;
}

/** The longest delay a Node timer takes (a longer one would fire after 1 ms). */
const MAX_DELAY = 0x7fffffff;

export class DeadlineQueue<T extends Deadline> {
  /** Due times (milliseconds since the epoch, as Date.now()) in heap order, parallel to `items`. */
  private times = new Float64Array(64);
  private readonly items: T[] = [];
  private timer: NodeJS.Timeout | undefined = undefined;
  /** When the timer was armed for (+Infinity when it is not armed). */
  private armedFor = Number.POSITIVE_INFINITY;
  private readonly fire = (): void => this.run();

  /** Items waiting. */
  get size(): number {
    return this.items.length;
  }

  /** Queues `item` to be due at `at` (as Date.now()), or moves it there if it is queued already. */
  schedule(item: T, at: number): void {
    let index = item.queueIndex;
    if (index < 0) {
      index = this.items.length;
      if (index === this.times.length) {
        const times = new Float64Array(index * 2);
        times.set(this.times);
        this.times = times;
      }
      this.items.push(item);
      item.queueIndex = index;
      this.times[index] = at;
      this.up(index);
    } else {
      const before = this.times[index] as number;
      this.times[index] = at;
      if (at < before) this.up(index);
      else this.down(index);
    }
    if (at < this.armedFor) this.arm(at);
  }

  /** Takes `item` out of the queue (nothing happens if it is not queued). */
  cancel(item: T): void {
    const index = item.queueIndex;
    if (index < 0) return;
    item.queueIndex = -1;
    const last = this.items.length - 1;
    const moved = this.items.pop() as T;
    if (index !== last) {
      this.items[index] = moved;
      this.times[index] = this.times[last] as number;
      moved.queueIndex = index;
      this.up(index);
      this.down(moved.queueIndex);
    }
    if (this.items.length === 0 && this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.armedFor = Number.POSITIVE_INFINITY;
    }
    if (this.items.length * 4 < this.times.length && this.times.length > 64) {
      this.times = this.times.slice(0, this.times.length / 2);
    }
  }

  private arm(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(this.fire, Math.min(MAX_DELAY, Math.max(1, at - Date.now())));
    this.armedFor = at;
  }

  private run(): void {
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = Date.now();
    try {
      // Items scheduled again by onDue are due one millisecond from now at the earliest.
      while (this.items.length > 0 && (this.times[0] as number) <= now) {
        const item = this.items[0] as T;
        this.cancel(item);
        item.onDue();
      }
    } finally {
      // Also after a throwing onDue: the items behind it are still served.
      const first = this.times[0] as number;
      if (this.items.length > 0 && first < this.armedFor) this.arm(first);
    }
  }

  private up(index: number): void {
    const { items, times } = this;
    const item = items[index] as T;
    const at = times[index] as number;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const parentAt = times[parent] as number;
      if (parentAt <= at) break;
      const above = items[parent] as T;
      items[index] = above;
      times[index] = parentAt;
      above.queueIndex = index;
      index = parent;
    }
    items[index] = item;
    times[index] = at;
    item.queueIndex = index;
  }

  private down(index: number): void {
    const { items, times } = this;
    const count = items.length;
    const item = items[index] as T;
    const at = times[index] as number;
    for (;;) {
      let child = 2 * index + 1;
      if (child >= count) break;
      if (child + 1 < count && (times[child + 1] as number) < (times[child] as number)) child++;
      const childAt = times[child] as number;
      if (childAt >= at) break;
      const below = items[child] as T;
      items[index] = below;
      times[index] = childAt;
      below.queueIndex = index;
      index = child;
    }
    items[index] = item;
    times[index] = at;
    item.queueIndex = index;
  }
}
