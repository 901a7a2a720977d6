/**
 * What the NATS sink tests share: the shared server (NATS with JetStream at 127.0.0.1:4222, or a skip that
 * says what to start; under CI=true a missing server fails), a private nats-server on a free port for the
 * tests that stop or configure one, stream and bucket names unique to the run with their clean-up, and
 * reading a stream back.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { type JetStreamManager, jetstreamManager, type StoredMsg } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { type NatsDeclareOptions, NatsSink, type NatsSinkOptions } from "../../src/index.js";
import { freePort, silentLogger } from "../helpers/clients.js";
import { needProgram } from "../helpers/programs.js";
import { serviceOrSkip } from "../helpers/services.js";
import { uniqueName } from "./sink-server.js";

export const NATS_PORT = 4222;
export const NATS_URL = `nats://127.0.0.1:${NATS_PORT}`;

/** An admin connection to the shared server, closed after the test; null when the test skips. */
export async function natsOrSkip(
  t: TestContext,
): Promise<{ nc: NatsConnection; jsm: JetStreamManager } | null> {
  const reached = await serviceOrSkip(
    t,
    `NATS with JetStream at 127.0.0.1:${NATS_PORT}`,
    "`nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server` (see shared/services.md)",
    async () => {
      const nc = await connect({ servers: NATS_URL, timeout: 3000, reconnect: false });
      try {
        return { nc, jsm: await jetstreamManager(nc) };
      } catch (error) {
        await nc.close();
        throw error;
      }
    },
  );
  if (reached) t.after(() => reached.nc.close());
  return reached;
}

/** A stream and a bucket no other run uses (upper case: the stream names' convention), deleted after the test. */
export function uniqueStream(
  t: TestContext,
  what: string,
): { stream: string; bucket: string; subject: string } {
  const name = uniqueName(what);
  const names = { stream: name.toUpperCase(), bucket: `${name}-bodies`, subject: `${name}.{domain}` };
  t.after(async () => {
    const nc = await connect({ servers: NATS_URL, timeout: 3000, reconnect: false });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(names.stream).catch(() => {});
    await new Objm(nc)
      .open(names.bucket)
      .then((objects) => objects.destroy())
      .catch(() => {});
    await nc.close();
  });
  return names;
}

/**
 * A NatsSink on the shared server that declares `names`' stream (its bucket unless `bucket` is given),
 * silent unless told otherwise; closed after the test.
 */
export async function openStreamSink(
  t: TestContext,
  names: { stream: string; bucket: string; subject: string },
  {
    declare,
    ...options
  }: Omit<Partial<NatsSinkOptions>, "declare"> & { declare?: Omit<NatsDeclareOptions, "stream"> } = {},
): Promise<NatsSink> {
  const sink = await NatsSink.open({
    servers: NATS_URL,
    subject: names.subject,
    bucket: names.bucket,
    logger: silentLogger,
    ...options,
    declare: { ...declare, stream: names.stream },
  });
  t.after(() => sink.close());
  return sink;
}

/** Every message in `stream` now, in order (read by sequence, without a consumer). */
export async function readStream(jsm: JetStreamManager, stream: string): Promise<StoredMsg[]> {
  const info = await jsm.streams.info(stream);
  const messages: StoredMsg[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const message = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (message) messages.push(message);
  }
  return messages;
}

/** A nats-server of the test's own, on a free loopback port, with its own store directory. */
export interface PrivateNats {
  port: number;
  url: string;
  /** Stops the server (SIGKILL: a crash, no goodbye to clients) and resolves once it has exited. */
  kill(): Promise<void>;
  /** Starts it again on the same port and store (what it had persisted is back). */
  restart(): Promise<void>;
}

/**
 * Starts a private nats-server with JetStream (`config` is extra nats-server configuration text, e.g.
 * `max_payload: 65536` or `authorization { token: "..." }`); killed after the test. Null when the test
 * skips (no nats-server installed outside CI).
 */
export async function startPrivateNats(t: TestContext, config = ""): Promise<PrivateNats | null> {
  const program = needProgram(t, "nats-server", "nats-server");
  if (!program) return null;
  const directory = await mkdtemp(join(tmpdir(), "mailgate-nats-"));
  const port = await freePort();
  const configFile = join(directory, "server.conf");
  await writeFile(
    configFile,
    `listen: "127.0.0.1:${port}"\njetstream { store_dir: "${join(directory, "js")}" }\n${config}\n`,
  );
  let child: ChildProcess | undefined;
  const start = async () => {
    const started = spawn(program, ["-c", configFile], { stdio: ["ignore", "ignore", "pipe"] });
    child = started;
    let log = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`nats-server did not start within 10 s:\n${log}`)),
        10_000,
      );
      started.stderr?.setEncoding("utf8").on("data", (text: string) => {
        log += text;
        if (log.includes("Server is ready")) {
          clearTimeout(timer);
          resolve();
        }
      });
      started.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited with ${code}:\n${log}`));
      });
    });
  };
  const kill = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once("exit", resolve));
    running.kill("SIGKILL");
    await exited;
  };
  await start();
  t.after(async () => {
    await kill();
    await rm(directory, { recursive: true, force: true });
  });
  return { port, url: `nats://127.0.0.1:${port}`, kill, restart: start };
}
