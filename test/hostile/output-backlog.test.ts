/**
 * A client that sends commands but does not read the replies must not make the server queue them
 * (issue: 100 sessions of pipelined HELP while a message was being stored took RSS from 56 to 800 MiB).
 * The rule under test: no command runs while its reply cannot be written, so the output a session queues
 * in user space stays bounded, whatever the client sent.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect } from "node:net";
import { test } from "node:test";
import type { Connection } from "../../src/server/connection.js";
import type { SmtpServer } from "../../src/server/server.js";
import { startRecordingServer, waitFor } from "../helpers/clients.js";

function connectionsOf(server: SmtpServer): Connection[] {
  return [...(server as unknown as { open: Set<Connection> }).open];
}

const KiB = 1024;

test("commands buffered while a message is stored are not all run at once into a client that does not read", async (t) => {
  let release: () => void = () => {};
  const stored = new Promise<void>((resolve) => {
    release = resolve;
  });
  const { server, port } = await startRecordingServer(t, {
    ioCmdTimeout: 20_000,
    onMessageData: () => stored,
  });
  const socket = connect({ port, host: "127.0.0.1" });
  t.after(() => socket.destroy());
  await once(socket, "data"); // the greeting
  socket.write("EHLO client.test\r\n");
  await once(socket, "data");
  socket.write("MAIL FROM:<a@client.test>\r\nRCPT TO:<b@mx.test>\r\n");
  let answered = "";
  while (!/^250 2\.1\.5/m.test(answered)) answered += ((await once(socket, "data")) as [Buffer])[0];
  socket.write("DATA\r\n");
  await once(socket, "data"); // 354
  socket.pause(); // from now on the client reads nothing
  // The message, then 5-byte commands whose replies are 22 times larger, all sent while it is stored.
  const commands = "HELP\r\n".repeat(40_000);
  socket.write(`Subject: x\r\n\r\nbody\r\n.\r\n${commands}`);
  const [connection] = connectionsOf(server);
  assert.ok(connection);
  const total = connection.socket.bytesRead;
  await waitFor(
    () => connection.socket.bytesRead >= total + commands.length,
    "the server to hold every command while the message is stored",
    10_000,
  );
  release();
  let peak = 0;
  // The server runs what it can; sample its queued output until it has stopped for 300 ms.
  let last = -1;
  let still = 0;
  for (let round = 0; round < 200 && still < 6; round++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const queued = connection.socket.writableLength;
    peak = Math.max(peak, queued);
    still = queued === last ? still + 1 : 0;
    last = queued;
  }
  assert.ok(
    peak < 256 * KiB,
    `the server queued ${Math.round(peak / KiB)} KiB of replies for a client that does not read`,
  );

  // Nothing was lost: once the client reads, every reply arrives, and the session goes on.
  let received = "";
  socket.on("data", (chunk: Buffer) => {
    received += chunk.toString("latin1");
  });
  socket.resume();
  await waitFor(() => (received.match(/^214 /gm) ?? []).length === 40_000, "40,000 HELP replies", 20_000);
  assert.match(received, /^250 2\.0\.0 /);
  socket.write("QUIT\r\n");
  await waitFor(() => received.endsWith("221 2.0.0 mx.test Service closing transmission channel\r\n"), "221");
});
