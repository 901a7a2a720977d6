/**
 * The log lines about refusals that a flood can repeat thousands of times a second (connections at accept
 * for maxConnections and maxConnectionsPerIp; `mailgate serve`'s per-minute rate limits), bounded per
 * process: the first refusal for a reason is logged at once with its client's address; the ones that
 * follow within the next interval are counted by address, and one line sums them up when the interval ends
 * (or when the server stops), naming the addresses refused most. The metrics count every refusal.
 */

/** How long after a logged refusal further ones for the same reason are only counted. */
export const REFUSAL_WARNING_INTERVAL_MS = 10_000;
/** Addresses counted apart in one interval; beyond them, refusals are counted together. */
const MAX_COUNTED_ADDRESSES = 1000;
/** Addresses a summary names. */
const NAMED_ADDRESSES = 3;

interface Quiet {
  suppressed: number;
  byAddress: Map<string, number>;
  timer: NodeJS.Timeout;
}

const shown = (client: string) => client || "an unknown address";

export class RefusalWarnings {
  /** By reason: the interval in which refusals are counted, not logged. */
  private readonly quiet = new Map<string, Quiet>();

  constructor(
    private readonly warn: (message: string) => void,
    private readonly intervalMs = REFUSAL_WARNING_INTERVAL_MS,
  ) {}

  /**
   * A client was refused for `reason`; `client` is its address, "" when it has none (a UNIX socket peer, a
   * connection reset before it was accepted).
   */
  refused(client: string, reason: string): void {
    const quiet = this.quiet.get(reason);
    if (!quiet) {
      this.warn(`Refused ${shown(client)}: ${reason}`);
      this.startQuiet(reason);
      return;
    }
    quiet.suppressed++;
    const counted = quiet.byAddress.get(client);
    if (counted !== undefined || quiet.byAddress.size < MAX_COUNTED_ADDRESSES) {
      quiet.byAddress.set(client, (counted ?? 0) + 1);
    }
  }

  /** Writes the summaries of the intervals under way now (the server stops). */
  flush(): void {
    for (const [reason, quiet] of this.quiet) {
      clearTimeout(quiet.timer);
      this.summarize(reason, quiet);
    }
    this.quiet.clear();
  }

  private startQuiet(reason: string): void {
    const quiet: Quiet = {
      suppressed: 0,
      byAddress: new Map(),
      timer: setTimeout(() => {
        this.quiet.delete(reason);
        // A flood that goes on gets one line per interval.
        if (this.summarize(reason, quiet)) this.startQuiet(reason);
      }, this.intervalMs),
    };
    quiet.timer.unref(); // never keeps a stopped server's process alive
    this.quiet.set(reason, quiet);
  }

  /** The interval's line, if anything was refused in it; true when it was written. */
  private summarize(reason: string, quiet: Quiet): boolean {
    if (quiet.suppressed === 0) return false;
    const most = [...quiet.byAddress]
      .sort((a, b) => b[1] - a[1])
      .slice(0, NAMED_ADDRESSES)
      .map(([client, count]) => `${shown(client)} ${count}`);
    const addresses =
      quiet.byAddress.size >= MAX_COUNTED_ADDRESSES ? `${MAX_COUNTED_ADDRESSES}+` : quiet.byAddress.size;
    this.warn(
      `Refused ${quiet.suppressed} more in the last ${this.intervalMs / 1000} s from ${addresses} address(es) (most: ${most.join(", ")}): ${reason}`,
    );
    return true;
  }
}
