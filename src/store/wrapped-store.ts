/**
 * A store that is another store with its own deliver() (and, if given, its own close()): the size limit,
 * state, depth and readiness stay those of the store it wraps. For wrappers that time deliveries or stage
 * messages on disk before the store sees them.
 */
import type { MessageStore } from "./store.js";

export function wrapStore(
  store: MessageStore,
  deliver: MessageStore["deliver"],
  close: (() => Promise<void>) | undefined = store.close
    ? () => (store.close as () => Promise<void>).call(store)
    : undefined,
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
    ...(close ? { close } : {}),
    deliver,
  };
}
