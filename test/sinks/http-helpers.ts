/** What the HTTP sink tests share: the example receiver on a temporary Maildir, and an SMTP server delivering to a sink. */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import {
  createHttpReceiver,
  type HttpReceiver,
  type HttpReceiverOptions,
} from "../../examples/http-receiver.js";
import type { SmtpServer, SmtpServerOptions } from "../../src/server/server.js";
import type { HttpSink, HttpSinkOptions } from "../../src/sinks/http.js";
import type { WireEnvelope } from "../../src/sinks/mailgate-envelope.js";
import { MaildirStore, parseEnvelopeHeaders } from "../../src/store/maildir.js";
import { sessionFacts } from "../../src/store/session-facts.js";
import { startTestServer } from "../helpers/clients.js";

export const SECRET = "0123456789abcdef0123456789abcdef";

export interface RunningReceiver extends HttpReceiver {
  port: number;
  url: string;
  directory: string;
  /** The envelope of each stored message, by message id. */
  envelopes: Map<string, WireEnvelope>;
  /** The files in the Maildir's new/, each split into its envelope and the message as received. */
  messages(): Promise<{ from: string; to: string[]; body: Buffer }[]>;
}

/** The example receiver on 127.0.0.1, port 0, storing into a fresh Maildir; closed when the test ends. */
export async function startReceiver(
  t: TestContext,
  options: Partial<HttpReceiverOptions> = {},
): Promise<RunningReceiver> {
  const directory = await mkdtemp(join(tmpdir(), "mailgate-http-"));
  const store = await MaildirStore.open(directory);
  const envelopes = new Map<string, WireEnvelope>();
  const receiver = createHttpReceiver({
    store,
    secret: SECRET,
    ...options,
    onStored(id, envelope, location) {
      envelopes.set(id, envelope);
      options.onStored?.(id, envelope, location);
    },
  });
  await new Promise<void>((resolve) => receiver.server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    receiver.server.closeAllConnections();
    await new Promise((resolve) => receiver.server.close(resolve));
    await store.close();
    await rm(directory, { recursive: true, force: true });
  });
  const port = (receiver.server.address() as AddressInfo).port;
  return Object.assign(receiver, {
    port,
    url: `http://127.0.0.1:${port}/inbound`,
    directory,
    envelopes,
    async messages() {
      const names = await readdir(join(directory, "new"));
      const files = await Promise.all(names.map((name) => readFile(join(directory, "new", name))));
      return files.map((file) => {
        const { envelope, bodyOffset } = parseEnvelopeHeaders(file);
        return { from: envelope.from, to: envelope.to, body: file.subarray(bodyOffset) };
      });
    },
  });
}

/**
 * An SMTP server on 127.0.0.1, port 0, whose onMessageStream hands each message to `sink`, as a library
 * user would; its 250 names the message id. Stopped (at once) when the test ends.
 */
export async function startSmtp(
  t: TestContext,
  sink: HttpSink,
  options: SmtpServerOptions = {},
): Promise<{ server: SmtpServer; port: number }> {
  return startTestServer(t, {
    ...options,
    async onMessageStream(ctx, stream) {
      const receipt = await sink.deliver(
        { from: ctx.envelope.from, to: [...ctx.envelope.to], session: sessionFacts(ctx) },
        stream,
      );
      return `Ok: queued as ${receipt.id}`;
    },
  });
}

export type { HttpSinkOptions };
