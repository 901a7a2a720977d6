/**
 * `mailgate serve`'s Prometheus metrics (prom-client): an observer of the server that counts in plain
 * numbers as events happen (one increment each, no label hashing on the hot path) and hands the counts to
 * prom-client only when /metrics is scraped; the store's latency as a histogram; the store's state.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { SessionContext } from "../protocol/context.js";
import type { Observer, RefusalReason } from "../protocol/observer.js";
import { KNOWN_VERBS } from "../protocol/session.js";
import type { MessageStore } from "../store/store.js";

const REFUSAL_REASONS: readonly RefusalReason[] = [
  "max-connections",
  "max-connections-per-ip",
  "early-talker",
  "auth-failures-per-ip",
  "connection-rate",
  "message-rate",
];

/** Seconds: a Maildir fsync takes a millisecond or a few, a broker's confirm tens, a slow sink seconds. */
const STORE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** A counter's values: its labels and count, for each series. */
type Counts = readonly (readonly [Record<string, string>, number])[];

/** Every metric of this module's registry, with the counts it publishes. */
export class ServeMetrics implements Observer {
  readonly registry = new Registry();
  /** The open sessions, read at scrape time for their TLS and AUTH state. */
  private readonly sessions = new Set<SessionContext>();
  private opened = 0;
  private readonly refusals = new Map<RefusalReason, number>(REFUSAL_REASONS.map((reason) => [reason, 0]));
  /** By verb; a verb the server does not know is counted as "other" (clients choose it: no unbounded labels). */
  private readonly commands = new Map<string, number>();
  /** By the first digit of the code. */
  private readonly replies = [0, 0, 0, 0, 0, 0];
  private accepted = 0;
  private refused = 0;
  private bytes = 0;
  private hookFailures = 0;
  private authFailures = 0;
  private readonly storeDuration: Histogram<"outcome">;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    const sessions = this.sessions;
    /** A counter whose values are read from this object's counts when scraped. */
    const counter = (name: string, help: string, labelNames: readonly string[], values: () => Counts) =>
      new Counter({
        name,
        help,
        labelNames,
        registers,
        collect(this: Counter) {
          this.reset();
          for (const [labels, value] of values()) this.inc(labels, value);
        },
      });
    const single = (value: () => number) => (): Counts => [[{}, value()]];
    new Gauge({
      name: "mailgate_connections_open",
      help: "Connections admitted to a session and not yet closed.",
      registers,
      collect(this: Gauge) {
        this.set(sessions.size);
      },
    });
    counter(
      "mailgate_connections_total",
      "Connections admitted to a session (refused ones at accept are counted in mailgate_connections_refused_total only).",
      [],
      single(() => this.opened),
    );
    counter(
      "mailgate_connections_refused_total",
      "Connections refused: max-connections and max-connections-per-ip at accept (421), early-talker (554), auth-failures-per-ip (421), connection-rate and message-rate (421, the rate limits).",
      ["reason"],
      () => [...this.refusals].map(([reason, value]) => [{ reason }, value]),
    );
    new Gauge({
      name: "mailgate_sessions_open",
      help: "Open sessions by TLS (yes: implicit TLS or after STARTTLS) and AUTH (yes: authenticated) state.",
      labelNames: ["tls", "auth"],
      registers,
      collect(this: Gauge<"tls" | "auth">) {
        const counts = new Map<string, number>([
          ["no no", 0],
          ["no yes", 0],
          ["yes no", 0],
          ["yes yes", 0],
        ]);
        for (const ctx of sessions) {
          const key = `${ctx.server.encrypted ? "yes" : "no"} ${ctx.server.authenticated ? "yes" : "no"}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
        for (const [key, value] of counts) {
          const [tls, auth] = key.split(" ") as [string, string];
          this.set({ tls, auth }, value);
        }
      },
    });
    counter(
      "mailgate_commands_total",
      "Command lines read, by verb (verbs the server does not know as other).",
      ["verb"],
      () => [...this.commands].map(([verb, value]) => [{ verb }, value]),
    );
    counter(
      "mailgate_replies_total",
      "Replies sent in sessions, by code class (2xx, 3xx, 4xx, 5xx).",
      ["class"],
      () => [2, 3, 4, 5].map((digit): Counts[number] => [{ class: `${digit}xx` }, this.replies[digit] ?? 0]),
    );
    counter(
      "mailgate_messages_total",
      "Complete messages answered, by outcome: accepted (250) or refused (4xx, 5xx); in LMTP one per recipient.",
      ["outcome"],
      () => [
        [{ outcome: "accepted" }, this.accepted],
        [{ outcome: "refused" }, this.refused],
      ],
    );
    counter(
      "mailgate_received_bytes_total",
      "Bytes received from clients: commands and message data, after TLS decryption.",
      [],
      single(() => this.bytes),
    );
    counter(
      "mailgate_hook_errors_total",
      "Hooks that threw something other than an SmtpError (answered 451 or 500, and logged), a Maildir that cannot be written included.",
      [],
      single(() => this.hookFailures),
    );
    counter(
      "mailgate_auth_failures_total",
      "Failed AUTH attempts (wrong credentials, cancelled or malformed exchanges, temporary failures).",
      [],
      single(() => this.authFailures),
    );
    this.storeDuration = new Histogram({
      name: "mailgate_store_duration_seconds",
      help: "Time the store or sink took to take a message (from the first byte handed to it to its answer), by outcome: stored or failed.",
      labelNames: ["outcome"],
      buckets: STORE_BUCKETS,
      registers,
    });
  }

  /**
   * Publishes the store's state (mailgate_store_state, 1 for the current one) and depth
   * (mailgate_store_depth) when it has them (see StoreStatus).
   */
  watchStore(store: MessageStore): void {
    const registers = [this.registry];
    if (store.state !== undefined) {
      new Gauge({
        name: "mailgate_store_state",
        help: "The sink's connection state: 1 for the current state, which is the label.",
        labelNames: ["state"],
        registers,
        collect(this: Gauge<"state">) {
          this.reset();
          this.set({ state: store.state ?? "unknown" }, 1);
        },
      });
    }
    if (store.depth !== undefined) {
      new Gauge({
        name: "mailgate_store_depth",
        help: "Messages the store holds for later delivery (a spool's depth).",
        registers,
        collect(this: Gauge) {
          this.set(store.depth ?? 0);
        },
      });
    }
  }

  /** Records one delivery's duration in seconds. */
  storeTook(seconds: number, stored: boolean): void {
    this.storeDuration.observe({ outcome: stored ? "stored" : "failed" }, seconds);
  }

  /** The Prometheus text of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  // ---- the observer ----

  connectionOpened(ctx: SessionContext): void {
    this.opened++;
    this.sessions.add(ctx);
  }
  connectionClosed(ctx: SessionContext): void {
    this.sessions.delete(ctx);
  }
  connectionRefused(reason: RefusalReason): void {
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
  }
  command(_ctx: SessionContext, verb: string): void {
    const key = KNOWN_VERBS.has(verb) ? verb : "other";
    this.commands.set(key, (this.commands.get(key) ?? 0) + 1);
  }
  reply(_ctx: SessionContext, code: number): void {
    const digit = (code / 100) | 0;
    if (digit >= 2 && digit <= 5) this.replies[digit] = (this.replies[digit] ?? 0) + 1;
  }
  bytesReceived(_ctx: SessionContext, count: number): void {
    this.bytes += count;
  }
  messageAccepted(): void {
    this.accepted++;
  }
  messageRefused(): void {
    this.refused++;
  }
  hookFailed(): void {
    this.hookFailures++;
  }
  authFailed(): void {
    this.authFailures++;
  }
}
