/**
 * How stop() ends the open connections: idle sessions get 421 at once, running transactions may finish
 * within the timeout (then 421), connections still in a PROXY header or TLS handshake get a moment, and
 * every client a moment to hang up after its last reply before its socket is cut.
 */
import type { Socket } from "node:net";
import type { Admission } from "./admission.js";
import type { Connection } from "./connection.js";
import type { Refusals } from "./refusals.js";

/**
 * Milliseconds a stop gives connections still in their PROXY header or implicit TLS handshake, and
 * clients that have their last reply, before it closes their sockets.
 */
const PREPARE_GRACE_MS = 1000;

/** The server's connections as a drain sees them. */
export interface DrainedParts {
  readonly admission: Admission;
  readonly open: ReadonlySet<Connection>;
  readonly preparing: ReadonlySet<Socket>;
  readonly refusals: Refusals;
  /** Installs the function the server calls whenever a connection or socket goes away (null: none). */
  watchIdle(onIdle: (() => void) | null): void;
}

/** Resolves once every session is over and every socket closed. */
export async function drain(parts: DrainedParts, gracefully: boolean, timeout: number): Promise<void> {
  const { admission, open, preparing, refusals } = parts;
  // Every session over (its 221 or 421 written) and nobody left in a PROXY header or TLS handshake.
  let sessionsOver = () => {};
  let socketsClosed = () => {};
  const allSessionsOver = new Promise<void>((resolve) => {
    sessionsOver = resolve;
  });
  const allSocketsClosed = new Promise<void>((resolve) => {
    socketsClosed = resolve;
  });
  const onIdle = () => {
    if (admission.count === 0) sessionsOver();
    if (open.size === 0 && preparing.size === 0 && refusals.waiting.size === 0) socketsClosed();
  };
  parts.watchIdle(onIdle);
  onIdle();
  // Not yet in SMTP, they have no transaction to finish: a moment to complete their PROXY header or TLS
  // handshake (then they get 421), and no more, so that a silent client cannot hold the stop.
  const preparingCutoff = setTimeout(
    () => {
      for (const socket of preparing) socket.destroy();
    },
    gracefully ? Math.min(timeout, PREPARE_GRACE_MS) : 0,
  );
  for (const connection of open) {
    if (!connection.started) connection.session.shutdownNow();
    else if (gracefully) connection.session.requestClose();
    else connection.session.shutdownNow();
  }
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), gracefully ? timeout : 0);
  });
  if (await Promise.race([allSessionsOver.then(() => false), expired])) {
    for (const connection of open) connection.session.shutdownNow();
  }
  // Every client has its last reply: a moment to hang up (a lingering or refused socket would otherwise
  // hold the stop for its own linger), then whoever has not is cut off.
  const cutoff = setTimeout(() => {
    for (const connection of open) connection.socket.destroy();
    for (const socket of preparing) socket.destroy();
    refusals.destroyAll();
  }, PREPARE_GRACE_MS);
  await allSocketsClosed;
  clearTimeout(cutoff);
  clearTimeout(timer);
  clearTimeout(preparingCutoff);
  parts.watchIdle(null);
}
