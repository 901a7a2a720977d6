/**
 * Large messages in constant memory: onMessageStream receives the message as a Readable with
 * backpressure (ctx.message.data stays empty), and the 250 waits for the returned promise, so it is
 * sent only once the file is complete. A 1 GB message passes through with flat memory.
 * Hooks can also be passed as options instead of subclassing, as here.
 */
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { SmtpServer, type SmtpServerOptions } from "mailgate";

export function createFileSinkServer(directory: string, options: SmtpServerOptions = {}): SmtpServer {
  let count = 0;
  return new SmtpServer({
    maxMessageSize: 0, // no size limit: the message never sits in memory
    ...options,
    async onMessageStream(_ctx, stream) {
      const file = join(directory, `message-${++count}.eml`);
      await pipeline(stream, createWriteStream(file));
      return `Ok: written to ${file}`;
    },
  });
}

// Run directly (node example.js), it serves until Ctrl-C; imported, it only defines the server.
if (process.argv[1] === import.meta.filename)
  await createFileSinkServer(process.cwd(), { ports: 2525 }).start();
