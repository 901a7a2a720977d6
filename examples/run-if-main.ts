/** Starts an example server on 127.0.0.1:2525 when its file is run directly (node build/examples/x.js). */
import { pathToFileURL } from "node:url";
import type { SmtpServer } from "../src/index.js";

export async function runIfMain(moduleUrl: string, create: () => SmtpServer): Promise<void> {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
  const server = create();
  await server.start();
  console.log(`example listening on ${server.addresses.join(", ")}; Ctrl-C stops it`);
  process.once("SIGINT", () => void server.stop());
}
