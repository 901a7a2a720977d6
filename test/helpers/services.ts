/**
 * The services a test needs (RabbitMQ, NATS...): reached, or the test skips with one line saying what to
 * start; under CI=true a missing service fails the run (CI starts them all).
 */
import type { TestContext } from "node:test";

/** `reach()`'s result, or null after t.skip() when it fails outside CI. */
export async function serviceOrSkip<T>(
  t: TestContext,
  what: string,
  howToStart: string,
  reach: () => Promise<T>,
): Promise<T | null> {
  try {
    return await reach();
  } catch (error) {
    const why = `${what} is not reachable (${(error as Error).message})`;
    if (process.env.CI) throw new Error(`${why}; CI needs it running.`);
    t.skip(`${why}: start it with ${howToStart}`);
    return null;
  }
}
