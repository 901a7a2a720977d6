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
import { severityEnabled } from "../server/logger.js";
import type { SmtpServer, SmtpServerOptions } from "../server/server.js";
import type { MessageStore } from "../store/store.js";
import type { OperationsFlags } from "./operations-flags.js";

export class ServeOperations {
  /** The store to serve with: timed when metrics are on. */
  readonly store: MessageStore;
  /** What the server is built with: the observer, and the JSON logging. */
  readonly serverOptions: Pick<SmtpServerOptions, "observer" | "onLogging">;
  private readonly metrics: ServeMetrics | undefined;
  private endpoint: OperationsEndpoint | undefined;

  constructor(
    private readonly flags: OperationsFlags,
    store: MessageStore,
  ) {
    this.metrics = flags.metricsListen ? new ServeMetrics() : undefined;
    const metrics = this.metrics;
    metrics?.watchStore(store);
    this.store = metrics ? timedStore(store, (seconds, stored) => metrics.storeTook(seconds, stored)) : store;
    const options: Pick<SmtpServerOptions, "observer" | "onLogging"> = {};
    if (metrics) options.observer = metrics;
    if (flags.logFormat === "json") {
      const events = jsonLogEvents();
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

  /** Opens the endpoint once the server listens (not ready before); rejects when it cannot listen. */
  async start(server: SmtpServer): Promise<void> {
    const { metrics } = this;
    const listen = this.flags.metricsListen;
    if (!metrics || !listen) return;
    const readiness = readinessCheck(server, this.store);
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
