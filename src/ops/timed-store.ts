/**
 * A store that times every delivery of the store it wraps, whatever that is (the Maildir, a broker sink,
 * an HTTP sink, a spool), and otherwise is that store: its size limit, state, depth, readiness and close.
 */
import type { MessageStore } from "../store/store.js";
import { wrapStore } from "../store/wrapped-store.js";

/** `took` gets each delivery's duration in seconds and whether the store took the message. */
export function timedStore(
  store: MessageStore,
  took: (seconds: number, stored: boolean) => void,
): MessageStore {
  return wrapStore(store, async (envelope, message) => {
    const start = performance.now();
    try {
      const receipt = await store.deliver(envelope, message);
      took((performance.now() - start) / 1000, true);
      return receipt;
    } catch (error) {
      took((performance.now() - start) / 1000, false);
      throw error;
    }
  });
}
