/**
 * Hooks may be async, but most return a plain value. Awaiting a plain value still costs a trip through
 * the microtask queue for every caller up the chain, several per command: on the hot path the session
 * goes on synchronously when a hook's value is already there, and only waits when it is a promise.
 */

/** A value now, or a promise of it. */
export type Awaitable<T> = T | Promise<T>;

/** True for promises and other thenables (what `await` would wait for). */
export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

/**
 * Calls `fn`, then `next` with its value: at once when `fn` returned a plain value, after it settles when
 * it returned a thenable. An exception thrown by `fn` (or a rejection) goes to `onError` when given,
 * else it propagates (thrown, or as the returned promise's rejection).
 */
export function thenCall<T, R>(
  fn: () => T | PromiseLike<T>,
  next: (value: T) => Awaitable<R>,
  onError?: (error: unknown) => Awaitable<R>,
): Awaitable<R> {
  let value: T | PromiseLike<T>;
  try {
    value = fn();
  } catch (error) {
    if (onError) return onError(error);
    throw error;
  }
  if (isPromiseLike(value)) return Promise.resolve(value).then(next, onError);
  return next(value);
}
