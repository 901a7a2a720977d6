/**
 * A running load for the sink fault tests: SMTP clients sending 2 KB messages until stopped, recording
 * which got 250 (by queued id, with the bytes sent), which 451 4.3.0, anything else, and any session that
 * waited for a reply past its deadline.
 */
import { ehloClient, queuedId, sendOne } from "./sink-server.js";

/** A 2 KB message whose Subject names it. */
export function message(name: string): Buffer {
  const head = `From: load@example.org\r\nTo: rcpt@example.com\r\nSubject: ${name}\r\n\r\n`;
  const line = `${"x".repeat(76)}\r\n`;
  return Buffer.from(head + line.repeat(Math.ceil((2048 - head.length) / line.length)));
}

export interface Load {
  accepted: Map<string, Buffer>;
  refused: number;
  other: string[];
  hung: string[];
  stop(): Promise<void>;
}

/**
 * `clients` sessions sending until stop() (or `maxAttempts` in all); a refused client retries after 20 ms.
 * A reply later than `sessionDeadline` ms counts the session as hung (and ends it).
 */
export function runLoad(port: number, clients: number, maxAttempts: number, sessionDeadline: number): Load {
  const load: Load = { accepted: new Map(), refused: 0, other: [], hung: [], stop: async () => {} };
  let stopped = false;
  let attempts = 0;
  const sessions = Array.from({ length: clients }, async (_, index) => {
    const client = await ehloClient(port);
    try {
      while (!stopped && attempts < maxAttempts) {
        attempts += 1;
        const body = message(`client ${index} attempt ${attempts}`);
        let reply: string;
        try {
          reply = await sendOne(client, "load@example.org", ["rcpt@example.com"], body, {
            timeoutMs: sessionDeadline,
          });
        } catch (error) {
          load.hung.push((error as Error).message);
          return;
        }
        const id = queuedId(reply);
        if (id) load.accepted.set(id, body);
        else if (reply.startsWith("451 4.3.0")) {
          load.refused += 1;
          await new Promise((resolve) => setTimeout(resolve, 20));
        } else load.other.push(reply);
      }
    } finally {
      client.close();
    }
  });
  load.stop = async () => {
    stopped = true;
    await Promise.all(sessions);
  };
  return load;
}
