/**
 * Reading the PROXY protocol header (HAProxy v1/v2) that a trusted proxy sends before anything else,
 * on listeners that opt in. Bytes after the header are returned for the session, never lost.
 */
import { BlockList, isIP, type Socket } from "node:net";
import { Duplex } from "node:stream";
import { type ProxyInfo, parseProxyHeader } from "../protocol/proxy.js";

/** An address list option ("127.0.0.1, ::1, 10.0.0.0/8"): proxyTrusted, xclientTrusted. */
export function addressList(option: string, list: string): BlockList {
  const trusted = new BlockList();
  for (const item of list
    .split(",")
    .map((i) => i.trim())
    .filter(Boolean)) {
    const [address = "", prefix] = item.split("/");
    const family = isIP(address);
    const bits = prefix === undefined ? undefined : Number(prefix);
    if (
      family === 0 ||
      (bits !== undefined && !(Number.isInteger(bits) && bits >= 0 && bits <= (family === 4 ? 32 : 128)))
    ) {
      throw new TypeError(
        `Invalid option ${option}: "${item}"; each item is an IP address or address/prefix.`,
      );
    }
    const type = family === 4 ? "ipv4" : "ipv6";
    if (bits === undefined) trusted.addAddress(address, type);
    else trusted.addSubnet(address, bits, type);
  }
  return trusted;
}

export function isTrusted(trusted: BlockList, address: string | undefined): boolean {
  if (!address) return false;
  const family = isIP(address);
  if (family === 0) return false;
  return trusted.check(address, family === 4 ? "ipv4" : "ipv6");
}

/**
 * Resolves with the header's information once it is complete; rejects when it is malformed, too big,
 * too slow or the connection ends. The caller closes the connection then, without a reply.
 */
export function readProxyHeader(
  socket: Socket,
  timeoutMs: number,
): Promise<{ info: ProxyInfo; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffer: Buffer = Buffer.alloc(0);
    const finish = (outcome: () => void) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("error", onEnd);
      socket.off("close", onEnd);
      socket.pause();
      outcome();
    };
    const timer = setTimeout(
      () => finish(() => reject(new Error("no complete PROXY header in time"))),
      timeoutMs,
    );
    const onEnd = () => finish(() => reject(new Error("connection closed before the PROXY header ended")));
    const onData = (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      const result = parseProxyHeader(buffer);
      if (result.kind === "incomplete") return;
      if (result.kind === "invalid")
        return finish(() => reject(new Error(`bad PROXY header: ${result.reason}`)));
      // Bytes after the header came before our greeting: the session judges them (an early talker).
      finish(() => resolve({ info: result.info, rest: buffer.subarray(result.length) }));
    };
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("error", onEnd);
    socket.once("close", onEnd); // destroyed by us (a stop)
  });
}

/**
 * The socket as a stream that first yields `first` (bytes already read with the PROXY header), for a
 * TLS layer that must see the whole handshake. Flow control follows the reader.
 */
export function replayingSocket(socket: Socket, first: Buffer): Duplex {
  const stream = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk, _encoding, callback) {
      socket.write(chunk, callback);
    },
    final(callback) {
      socket.end();
      callback();
    },
    destroy(error, callback) {
      socket.destroy();
      callback(error);
    },
  });
  stream.push(first);
  socket.on("data", (chunk: Buffer) => {
    if (!stream.push(chunk)) socket.pause();
  });
  socket.once("end", () => stream.push(null));
  socket.once("close", () => stream.destroy());
  socket.on("error", (error) => stream.destroy(error));
  return stream;
}
