/**
 * The operations endpoint of `mailgate serve --workers N`, served by the primary. /metrics is one view of
 * all workers: at each scrape every running worker is asked for its metrics over IPC (prom-client's
 * getMetricsAsJSON() in the worker) and they are merged with the primary's own (its refusals at accept,
 * its process metrics, the worker counts) by AggregatorRegistry.aggregate(): counters and histograms
 * summed, default metrics by their own aggregators. /readyz is ready when at least one worker that gets
 * connections reports ready. A worker that does not answer within WORKER_ANSWER_TIMEOUT_MS is left out of
 * that scrape (mailgate_workers_scraped says how many were in it) or that probe.
 */
import { AggregatorRegistry, Gauge } from "prom-client";
import type { ReportKind, WorkerReport } from "../cluster/run-workers.js";
import type { EndpointHandlers } from "./endpoint.js";
import type { ServeMetrics } from "./metrics.js";
import { READINESS_TIMEOUT_MS } from "./readiness.js";

/** Milliseconds a worker has to answer; longer than its own store check, whose timeout it then reports. */
export const WORKER_ANSWER_TIMEOUT_MS = READINESS_TIMEOUT_MS + 1000;

/** What the primary's handle offers (PrimaryHandle of runWorkers). */
export interface ReportingWorkers {
  readonly workerPids: readonly number[];
  workerReports(kind: ReportKind, timeoutMs: number): Promise<WorkerReport[]>;
}

/**
 * The endpoint's handlers in the primary. `metrics` is the primary's own (the observer of its refusals);
 * the worker gauges are added to its registry.
 */
export function workersEndpointHandlers(metrics: ServeMetrics, workers: ReportingWorkers): EndpointHandlers {
  let scraped = 0;
  const registers = [metrics.registry];
  new Gauge({
    name: "mailgate_workers",
    help: "Worker processes that get connections (ready, not retiring).",
    registers,
    collect(this: Gauge) {
      this.set(workers.workerPids.length);
    },
  });
  new Gauge({
    name: "mailgate_workers_scraped",
    help: `Workers whose metrics are in this scrape: a worker that did not answer within ${WORKER_ANSWER_TIMEOUT_MS} ms is left out of the sums.`,
    registers,
    collect(this: Gauge) {
      this.set(scraped);
    },
  });
  return {
    async metrics() {
      const reports = await workers.workerReports("metrics", WORKER_ANSWER_TIMEOUT_MS);
      const fromWorkers = reports.flatMap(({ report }) =>
        report?.kind === "metrics" ? [report.metrics] : [],
      );
      scraped = fromWorkers.length;
      const own = await metrics.registry.getMetricsAsJSON();
      const merged = AggregatorRegistry.aggregate([own, ...fromWorkers]);
      return { text: await merged.metrics(), contentType: metrics.contentType };
    },
    readiness: () => workersReadiness(workers),
  };
}

/** Null when a worker that gets connections is ready; else why none is. */
async function workersReadiness(workers: ReportingWorkers): Promise<string | null> {
  const reports = await workers.workerReports("readiness", WORKER_ANSWER_TIMEOUT_MS);
  if (reports.length === 0) return "no worker is running (they are starting, or being replaced)";
  const reasons: string[] = [];
  for (const { pid, report } of reports) {
    // A worker with nothing to report (a library user's that reports nothing) is ready while it serves.
    if (report?.kind === "none" || (report?.kind === "readiness" && report.reason === null)) return null;
    const reason =
      report?.kind === "readiness" ? report.reason : `no answer within ${WORKER_ANSWER_TIMEOUT_MS} ms`;
    reasons.push(`worker ${pid}: ${reason}`);
  }
  return `no worker is ready (${reasons.join("; ")})`;
}
