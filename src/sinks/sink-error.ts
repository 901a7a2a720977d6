/**
 * How a sink fails, in two kinds, both answered 451 4.3.0 by default:
 * - SinkUnavailable: the sink cannot take the message now (not connected, the broker is unreachable or too
 *   slow, no confirm within the publish timeout, the connection was lost, the sink is closing). The broker
 *   said nothing about this message: a spool may accept it and forward it later.
 * - any other error: the broker or endpoint answered and refused this message (unroutable, nacked, stream
 *   full, an HTTP error status). A spool must not take it: forwarding it later would be refused again.
 */
import { SmtpError } from "../protocol/errors.js";

/** What the client reads after a sink's temporary failure, of either kind. */
export const SINK_TEMPORARY_TEXT = "Temporary failure in the mail system; try again later";

export class SinkUnavailable extends SmtpError {
  /**
   * @param sink names the sink in the log ("AMQP sink", "HTTP sink https://host/path")
   * @param why what happened, for the log; never sent to the client
   */
  constructor(sink: string, why: string) {
    super(451, SINK_TEMPORARY_TEXT, "4.3.0", `451 4.3.0 ${sink}: ${why}`);
    this.name = "SinkUnavailable";
  }
}

/** The broker or endpoint answered and refused this message: 451 4.3.0, never spooled. */
export function sinkRefusal(sink: string, why: string): SmtpError {
  return new SmtpError(451, SINK_TEMPORARY_TEXT, "4.3.0", `451 4.3.0 ${sink}: ${why}`);
}

/** An error as one phrase for a log line (with its errno code when it has one). */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code ? `${error.message} (${code})` : error.message;
  }
  return String(error);
}
