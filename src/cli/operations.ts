/**
 * What --metrics-listen and --log-format add to `mailgate serve`: the metrics observer and the timed store
 * (only with --metrics-listen: without it nothing is counted), the JSON log events, and the endpoint. With
 * workers, the primary serves the endpoint for all of them (its observer counts its refusals at accept)
 * and each worker reports its metrics and readiness to it.
 */

import type { PrimaryHandle, PrimaryServices } from "../cluster/run-workers.js";
import { type EndpointHandlers, OperationsEndpoint } from "../ops/endpoint.js";
import { jsonLogEvents } from "../ops/json-log.js";
import { ServeMetrics } from "../ops/metrics.js";
import { readinessCheck } from "../ops/readiness.js";
import { timedStore } from "../ops/timed-store.js";
import { workersEndpointHandlers } from "../ops/workers-operations.js";
import type { SessionContext } from "../protocol/context.js";
import type { Severity } from "../protocol/hooks.js";
import { batchedStdout } from "../server/batched-output.js";
import { lineLogger, loggerAbove, severityEnabled } from "../server/logger.js";
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

  /** `severity`: --logger-severity, which the sink's and Redis's lines follow as the server's own do. */
  constructor(
    private readonly flags: OperationsFlags,
    severity: Severity,
  ) {
    this.metrics = flags.metricsListen ? new ServeMetrics() : undefined;
    const metrics = this.metrics;
    const options: Pick<SmtpServerOptions, "observer" | "onLogging"> = {};
    if (metrics) options.observer = metrics;
    // A server program's log is its output, written once per turn.
    let logger = lineLogger(batchedStdout());
    if (flags.logFormat === "json") {
      const events = jsonLogEvents();
      logger = {
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
    this.logger = loggerAbove(logger, severity);
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
    if (!metrics) return;
    const readiness = readinessCheck(server, this.watchedStore("start"));
    await this.open(
      {
        metrics: async () => ({ text: await metrics.render(), contentType: metrics.contentType }),
        readiness,
      },
      (message) => server.onLogging(null, "info", message),
    );
  }

  /**
   * In a worker: answers the primary's requests for this worker's metrics and readiness (with
   * --metrics-listen; without it the primary serves no endpoint and asks nothing).
   */
  reportTo(primary: PrimaryServices, server: SmtpServer): void {
    const { metrics } = this;
    if (!metrics) return;
    primary.report({
      metrics: () => metrics.registry.getMetricsAsJSON(),
      readiness: readinessCheck(server, this.watchedStore("reportTo"), "primary"),
    });
  }

  /**
   * In the primary, once its workers are ready: opens the endpoint for all of them (one /metrics, /readyz
   * ready while a worker is); rejects when it cannot listen.
   */
  async startPrimary(primary: PrimaryHandle): Promise<void> {
    const { metrics } = this;
    if (!metrics) return;
    await this.open(workersEndpointHandlers(metrics, primary), (message) => this.logger.info(message));
  }

  private async open(handlers: EndpointHandlers, log: (message: string) => void): Promise<void> {
    const listen = this.flags.metricsListen;
    if (!listen) return;
    this.endpoint = await OperationsEndpoint.listen(listen.host, listen.port, handlers);
    log(`Operations endpoint on ${this.endpoint.url} (/metrics, /healthz, /readyz)`);
  }

  private watchedStore(caller: string): MessageStore {
    if (!this.#store) throw new Error(`ServeOperations.${caller}(): watch(store) comes first.`);
    return this.#store;
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
