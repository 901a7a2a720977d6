/**
 * `/readyz`: whether this instance should be sent mail now. Ready while the server listens (not before
 * start, not once it stops) and its store can take a message: the store's own check when it has one (the
 * Maildir creates a file in tmp/), else its state when it has one ("connected"), else always.
 */
import type { MessageStore } from "../store/store.js";

/** Milliseconds a store's check may take before the instance is called unready. */
export const READINESS_TIMEOUT_MS = 2000;

/** What readiness reads of the server. */
export interface Listening {
  readonly addresses: readonly string[];
  readonly isShuttingDown: boolean;
  readonly isStopped: boolean;
}

/**
 * Resolves with null when ready, else with a short reason. Checks asked for while one runs share it, so
 * that a burst of probes costs one check.
 */
export function readinessCheck(
  server: Listening,
  store: MessageStore,
  /** "primary": a worker's server, which has no listeners of its own (its primary listens for it). */
  listener: "own" | "primary" = "own",
): () => Promise<string | null> {
  let running: Promise<string | null> | null = null;
  return () => {
    running ??= check(server, store, listener).finally(() => {
      running = null;
    });
    return running;
  };
}

async function check(
  server: Listening,
  store: MessageStore,
  listener: "own" | "primary",
): Promise<string | null> {
  if (server.isShuttingDown) return "the server is stopping";
  if (server.isStopped || (listener === "own" && server.addresses.length === 0)) {
    return "the server is not listening";
  }
  if (store.checkReady) {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<string>((resolve) => {
      timer = setTimeout(
        () => resolve(`the store did not answer its check within ${READINESS_TIMEOUT_MS} ms`),
        READINESS_TIMEOUT_MS,
      );
    });
    try {
      return await Promise.race([
        store.checkReady().then(
          () => null,
          (error: unknown) => (error instanceof Error ? error.message : String(error)),
        ),
        timedOut,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
  if (store.state !== undefined && store.state !== "connected") return `the sink is ${store.state}`;
  return null;
}
