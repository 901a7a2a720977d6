/**
 * The log lines about refused connections (at accept for maxConnections and maxConnectionsPerIp; by
 * `mailgate serve`'s per-minute rate limits), bounded: a flood of thousands of connections a second would
 * otherwise write as many lines and fill the disk.
 * The first refusal for a reason is logged at once; the ones that follow within the next interval are
 * counted, and one line sums them up when the interval ends. The metrics count every refusal.
 */

/** How long after a logged refusal further ones for the same reason are only counted. */
export const REFUSAL_WARNING_INTERVAL_MS = 10_000;

interface Quiet {
  suppressed: number;
  timer: NodeJS.Timeout;
}

export class RefusalWarnings {
  /** By reason: the interval in which refusals are counted, not logged. */
  private readonly quiet = new Map<string, Quiet>();

  constructor(
    private readonly warn: (message: string) => void,
    private readonly intervalMs = REFUSAL_WARNING_INTERVAL_MS,
  ) {}

  /** A connection from `client` ("" when its address is unknown) was refused for `reason`. */
  refused(client: string, reason: string): void {
    const quiet = this.quiet.get(reason);
    if (quiet) {
      quiet.suppressed++;
      return;
    }
    this.warn(`Refused ${client || "a client whose address is unknown"}: ${reason}`);
    this.startQuiet(reason);
  }

  private startQuiet(reason: string): void {
    const quiet: Quiet = {
      suppressed: 0,
      timer: setTimeout(() => {
        this.quiet.delete(reason);
        if (quiet.suppressed === 0) return;
        const seconds = this.intervalMs / 1000;
        this.warn(`Refused ${quiet.suppressed} more connection(s) in the last ${seconds} s: ${reason}`);
        this.startQuiet(reason); // a flood that goes on gets one line per interval
      }, this.intervalMs),
    };
    quiet.timer.unref(); // never keeps a stopped server's process alive
    this.quiet.set(reason, quiet);
  }
}
