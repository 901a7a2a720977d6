/**
 * The primary's requests to its workers for the operations endpoint: each worker's metrics or readiness,
 * gathered with a deadline. A worker that does not answer in time (busy, stuck, dying) is left out of that
 * scrape or probe (its answer is null) rather than holding it up.
 */
import type { ReportContent, ReportKind } from "./messages.js";
import type { WorkerProcess } from "./worker-process.js";

/** One worker's answer; null when it did not answer within the deadline (or died meanwhile). */
export interface WorkerReport {
  pid: number;
  report: ReportContent | null;
}

interface Pending {
  worker: WorkerProcess;
  settle(report: ReportContent | null): void;
}

export class WorkerReports {
  private requests = 0;
  private readonly pending = new Map<number, Pending>();

  /** Asks each of `workers` at once; resolves when all have answered or timeoutMs has passed. */
  gather(workers: readonly WorkerProcess[], kind: ReportKind, timeoutMs: number): Promise<WorkerReport[]> {
    return Promise.all(workers.map((worker) => this.ask(worker, kind, timeoutMs)));
  }

  /** A worker's "report" message. */
  received(request: number, report: ReportContent): void {
    this.pending.get(request)?.settle(report);
  }

  /** The worker has exited: what was asked of it gets no answer. */
  forget(worker: WorkerProcess): void {
    for (const entry of [...this.pending.values()]) if (entry.worker === worker) entry.settle(null);
  }

  private ask(worker: WorkerProcess, kind: ReportKind, timeoutMs: number): Promise<WorkerReport> {
    const request = ++this.requests;
    const pid = worker.pid;
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(null), timeoutMs);
      const settle = (report: ReportContent | null) => {
        clearTimeout(timer);
        this.pending.delete(request);
        resolve({ pid, report });
      };
      this.pending.set(request, { worker, settle });
      worker.send({ type: "report", request, kind }, undefined, (error) => {
        if (error) settle(null);
      });
    });
  }
}
