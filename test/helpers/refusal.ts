/** What socketless tests of the protocol share: the reply an SmtpError gives, and an observer of no-ops. */
import assert from "node:assert/strict";
import { SmtpError } from "../../src/protocol/errors.js";
import type { Observer } from "../../src/protocol/observer.js";

/** The reply `run` throws as an SmtpError, as sent without its CRLF; fails the test when it throws none. */
export function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof SmtpError, String(error));
    return error.render().trimEnd();
  }
  assert.fail("accepted");
}

/** An observer that ignores every event but those given. */
export function observerOf(events: Partial<Observer>): Observer {
  const none = () => {};
  return {
    connectionOpened: none,
    connectionClosed: none,
    connectionRefused: none,
    command: none,
    reply: none,
    bytesReceived: none,
    messageAccepted: none,
    messageRefused: none,
    hookFailed: none,
    authFailed: none,
    ...events,
  };
}
