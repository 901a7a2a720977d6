/** The test proxy itself: relays, cuts, stalls and restores. */
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, createServer, type Socket } from "node:net";
import { test } from "node:test";
import { TcpProxy } from "./tcp-proxy.js";

test("TcpProxy relays, stalls (bytes held, connection open), restores and cuts", async (t) => {
  const echo = createServer((socket) => {
    socket.on("error", () => {});
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
  t.after(() => echo.close());
  const address = echo.address();
  assert.ok(address && typeof address === "object");
  const proxy = await TcpProxy.start(address.port);
  t.after(() => proxy.close());

  const client = connect(proxy.port, "127.0.0.1");
  t.after(() => client.destroy());
  await once(client, "connect");
  const read = async (socket: Socket) => String(((await once(socket, "data")) as [Buffer])[0]);
  client.write("one");
  assert.equal(await read(client), "one");

  proxy.stall();
  client.write("two");
  const held = await Promise.race([
    read(client),
    new Promise<string>((resolve) => setTimeout(() => resolve("nothing"), 200)),
  ]);
  assert.equal(held, "nothing");
  proxy.restore();
  assert.equal(await read(client), "two");

  client.on("error", () => {}); // the reset
  // once() would reject on the reset's 'error' event: the close is what is awaited.
  const closed = new Promise<boolean>((resolve) => client.once("close", resolve));
  proxy.cut();
  const error = await closed;
  assert.equal(error, true, "reset");
  const refused = connect(proxy.port, "127.0.0.1");
  refused.on("error", () => {});
  await new Promise((resolve) => refused.once("close", resolve));
  proxy.restore();
  const again = connect(proxy.port, "127.0.0.1");
  t.after(() => again.destroy());
  await once(again, "connect");
  again.write("three");
  assert.equal(await read(again), "three");
});
