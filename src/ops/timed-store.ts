/**
 * A store that times every delivery of the store it wraps, whatever that is (the Maildir, a broker sink,
 * an HTTP sink, a spool), and otherwise is that store: its size limit, state, depth, readiness and close.
 */
import type { DeliveryReceipt, MessageStore, StoreEnvelope } from "../store/store.js";

/** `took` gets each delivery's duration in seconds and whether the store took the message. */
export function timedStore(
  store: MessageStore,
  took: (seconds: number, stored: boolean) => void,
): MessageStore {
  return {
    get maxMessageSize() {
      return store.maxMessageSize;
    },
    get state() {
      return store.state;
    },
    get depth() {
      return store.depth;
    },
    ...(store.checkReady ? { checkReady: () => (store.checkReady as () => Promise<void>).call(store) } : {}),
    ...(store.close ? { close: () => (store.close as () => Promise<void>).call(store) } : {}),
    async deliver(envelope: StoreEnvelope, message: AsyncIterable<Buffer>): Promise<DeliveryReceipt> {
      const start = performance.now();
      try {
        const receipt = await store.deliver(envelope, message);
        took((performance.now() - start) / 1000, true);
        return receipt;
      } catch (error) {
        took((performance.now() - start) / 1000, false);
        throw error;
      }
    },
  };
}
