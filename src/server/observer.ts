/**
 * The `observer` option: checked at construction, and completed into the Observer the server and its
 * sessions call, with every method present and guarded, so that an observer that throws can break neither
 * a session nor the process.
 */
import type { Observer, ServerObserver } from "../protocol/observer.js";

/** Every event an observer may be told of, by method name: the option's check and the guard use it. */
const EVENTS = [
  "connectionOpened",
  "connectionClosed",
  "connectionRefused",
  "command",
  "reply",
  "bytesReceived",
  "messageAccepted",
  "messageRefused",
  "hookFailed",
  "authFailed",
] as const satisfies readonly (keyof ServerObserver)[];

function ignore(): void {}

function warnObserverFailed(method: string, error: unknown): void {
  process.emitWarning(
    `mailgate: the observer's ${method} threw (${error instanceof Error ? error.message : String(error)}); events it fails to take are dropped.`,
  );
}

/**
 * The observer the server calls, or undefined without one. `failed` is told of the first throw (later
 * ones are dropped, as a broken observer would otherwise flood the output); by default a process warning.
 */
export function completeObserver(
  given: unknown,
  failed: (method: string, error: unknown) => void = warnObserverFailed,
): Observer | undefined {
  if (given === undefined) return undefined;
  if (typeof given !== "object" || given === null) {
    throw new TypeError(
      "Invalid option observer: it must be an object with event methods (see ServerObserver).",
    );
  }
  const observer = given as Record<string, unknown>;
  let warned = false;
  const complete: Record<string, unknown> = {};
  for (const name of EVENTS) {
    const method = observer[name];
    if (method === undefined) {
      complete[name] = ignore;
      continue;
    }
    if (typeof method !== "function") {
      throw new TypeError(`Invalid option observer: its ${name} must be a function.`);
    }
    // Two parameters at most, named rather than spread: no array per event.
    complete[name] = (first: unknown, second: unknown) => {
      try {
        method.call(observer, first, second);
      } catch (error) {
        if (warned) return;
        warned = true;
        failed(name, error);
      }
    };
  }
  return complete as Observer;
}
