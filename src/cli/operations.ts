/**
 * What --metrics-listen and --log-format add to `mailgate serve`: the metrics observer and the timed store
 * (only with --metrics-listen: without it nothing is counted), the JSON log events, and the endpoint.
 */

import { OperationsEndpoint } from "../ops/endpoint.js";
import { jsonLogEvents } from "../ops/json-log.js";
import { ServeMetrics } from "../ops/metrics.js";
import { readinessCheck } from "../ops/readiness.js";
import { timedStore } from "../ops/timed-store.js";
import type { SessionContext } from "../protocol/context.js";
import type { Severity } from "../protocol/hooks.js";
import { lineLogger, severityEnabled } from "../server/logger.js";
import type { Logger } from "../server/options.js";
import type { SmtpServer, SmtpServerOptions } from "../server/server.js";
import type { MessageStore } from "../store/store.js";
import type { OperationsFlags } from "./operations-flags.js";

export class ServeOperations {
  /** What the server is built with: the observer, and the JSON logging. */
  readonly serverOptions: Pick<SmtpServerOptions, "observer" | "onLogging">;
  /**
   * Where what is not a server event goes (a sink's or Redis's connection events): text lines on stdout,
   * or JSON lines as the server's own events with --log-format json.
   */
  readonly logger: Logger;
  private readonly metrics: ServeMetrics | undefined;
  private endpoint: OperationsEndpoint | undefined;
  #store: MessageStore | undefined;

  constructor(private readonly flags: OperationsFlags) {
    this.metrics = flags.metricsListen ? new ServeMetrics() : undefined;
    const metrics = this.metrics;
    const options: Pick<SmtpServerOptions, "observer" | "onLogging"> = {};
    if (metrics) options.observer = metrics;
    this.logger = lineLogger(process.stdout); // a server program's log is its output
    if (flags.logFormat === "json") {
      const events = jsonLogEvents();
      this.logger = {
        debug: (message) => events(null, "debug", message),
        info: (message) => events(null, "info", message),
        warn: (message) => events(null, "warn", message),
        error: (message) => events(null, "error", message),
      };
      options.onLogging = function (
        this: SmtpServer,
        ctx: SessionContext | null,
        severity: Severity,
        message: string,
        error?: unknown,
      ) {
        if (severityEnabled(severity, this.settings.loggerSeverity)) events(ctx, severity, message, error);
      };
    }
    this.serverOptions = options;
  }

  /** The store to serve with: `store`, timed and watched when metrics are on. */
  watch(store: MessageStore): MessageStore {
    const { metrics } = this;
    metrics?.watchStore(store);
    this.#store = metrics
      ? timedStore(store, (seconds, stored) => metrics.storeTook(seconds, stored))
      : store;
    return this.#store;
  }

  /** Opens the endpoint once the server listens (not ready before); rejects when it cannot listen. */
  async start(server: SmtpServer): Promise<void> {
    const { metrics } = this;
    const listen = this.flags.metricsListen;
    if (!metrics || !listen) return;
    if (!this.#store) throw new Error("ServeOperations.start(): watch(store) comes first.");
    const readiness = readinessCheck(server, this.#store);
    this.endpoint = await OperationsEndpoint.listen(listen.host, listen.port, {
      metrics: async () => ({ text: await metrics.render(), contentType: metrics.contentType }),
      readiness,
    });
    server.onLogging(
      null,
      "info",
      `Operations endpoint on ${this.endpoint.url} (/metrics, /healthz, /readyz)`,
    );
  }

  /** The endpoint's "http://host:port" once started (the real port when 0 was asked for). */
  get endpointUrl(): string | undefined {
    return this.endpoint?.url;
  }

  async close(): Promise<void> {
    await this.endpoint?.close();
    this.endpoint = undefined;
  }
}
