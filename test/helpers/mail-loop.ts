/**
 * Clients that keep sending messages over loopback (each connection: EHLO, one to three transactions,
 * QUIT), marking every message with a header of its own, until told to stop. What a test wants to know:
 * which messages got their 250, and every way a client was let down (refused, reset, an error reply).
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { RawClient, waitFor } from "./clients.js";

export const MARKER_HEADER = "X-Loop-Marker";

export class MailLoop {
  /** Markers of the messages that got their 250. */
  readonly acked = new Set<string>();
  /** One line per failure: a refused or reset connection, an unexpected reply. */
  readonly failures: string[] = [];
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(
    private readonly port: number,
    clients = 4,
  ) {
    this.loops = Array.from({ length: clients }, (_, client) => this.loop(client));
  }

  /** Resolves once `count` more messages got their 250 than when it was called. */
  async more(count: number, timeoutMs = 20_000): Promise<void> {
    const target = this.acked.size + count;
    await waitFor(() => this.acked.size >= target, `${target} messages acknowledged`, timeoutMs);
  }

  /** Lets every client finish its connection, then resolves. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async loop(client: number): Promise<void> {
    for (let connection = 0; this.running; connection++) {
      const name = `c${client}n${connection}`;
      try {
        await this.session(name, 1 + (connection % 3));
      } catch (error) {
        this.failures.push(`${name}: ${(error as Error).message}`);
      }
    }
  }

  private async session(name: string, transactions: number): Promise<void> {
    const smtp = await RawClient.connect(this.port);
    try {
      const expect = async (line: string | null, code: string) => {
        const reply = line === null ? await smtp.reply(15_000) : await smtp.command(line, 15_000);
        if (!reply.startsWith(code))
          throw new Error(`${line ?? "greeting"} answered ${JSON.stringify(reply)}`);
      };
      await expect(null, "220");
      await expect("EHLO loop.test", "250");
      for (let i = 0; i < transactions; i++) {
        const marker = `${name}m${i}`;
        await expect("MAIL FROM:<loop@x.test>", "250");
        await expect("RCPT TO:<box@y.test>", "250");
        await expect("DATA", "354");
        await expect(`${MARKER_HEADER}: ${marker}\r\nSubject: loop\r\n\r\nbody of ${marker}\r\n.`, "250");
        this.acked.add(marker);
      }
      await expect("QUIT", "221");
    } finally {
      smtp.close();
    }
  }
}

/** How many times each marker is stored in the Maildir's new/ directory. */
export async function storedMarkers(maildir: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const directory = join(maildir, "new");
  for (const name of await readdir(directory)) {
    const text = (await readFile(join(directory, name))).toString("latin1");
    const marker = new RegExp(`^${MARKER_HEADER}: (\\S+)`, "m").exec(text)?.[1];
    if (marker) counts.set(marker, (counts.get(marker) ?? 0) + 1);
  }
  return counts;
}
