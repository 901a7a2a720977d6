/** `mailgate serve` as a child process, the way a user runs it: the built CLI, its output, its exit. */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { waitFor } from "./clients.js";

export const MAIN = new URL("../../src/cli/main.js", import.meta.url).pathname;

export interface Served {
  child: ChildProcess;
  port: number;
  /** Everything it printed so far, stdout and stderr. */
  output: () => string;
  exited: Promise<number | null>;
}

/**
 * Starts `mailgate serve --ports 0 ARGS` in `cwd` and resolves with the port from its start line; rejects
 * (with its output) if it exits first or prints no start line within 10 s.
 */
export async function startServe(
  cwd: string,
  args: readonly string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): Promise<Served> {
  const { child, output, exited } = spawnNode([MAIN, "serve", "--ports", "0", ...args], { cwd, env });
  const port = await new Promise<number>((resolve, reject) => {
    // Generous: a loaded 2-core machine can take seconds to start a Node process. One that does not start
    // is killed, or the test file would wait for it forever.
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`serve did not start within 30 s:\n${output()}`));
    }, 30_000);
    const check = () => {
      const match = /serving [LS]MTP on 127\.0\.0\.1:(\d+)/.exec(output());
      if (match) {
        clearTimeout(timer);
        child.stdout?.off("data", check);
        resolve(Number(match[1]));
      }
    };
    child.stdout?.on("data", check);
    child.on("exit", () => reject(new Error(`serve exited:\n${output()}`)));
  });
  return { child, port, output, exited };
}

/**
 * A Node program (`args`: its script and arguments) as a child process, with what it prints gathered.
 * `detached`: in a process group of its own, so that a test can kill the program and its children at once
 * (`process.kill(-child.pid)`).
 */
export function spawnNode(
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; detached?: boolean } = {},
): Omit<Served, "port"> {
  const child = spawn(process.execPath, args, { ...options, stdio: "pipe" });
  let output = "";
  child.stdout?.on("data", (d) => {
    output += d;
  });
  child.stderr?.on("data", (d) => {
    output += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/**
 * `mailgate serve --workers 2 --hosts 127.0.0.1 ARGS` in a new directory, killed and removed after the
 * test.
 */
export async function serveWorkers(t: TestContext, args: string[]): Promise<{ served: Served; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), "mailgate-workers-"));
  const started = await startServe(dir, ["--workers", "2", "--hosts", "127.0.0.1", ...args]);
  t.after(async () => {
    started.child.kill("SIGKILL");
    await started.exited;
    await rm(dir, { recursive: true, force: true });
  });
  return { served: started, dir };
}

/**
 * Resolves when `pattern` has matched the output `count` times; fails with the output's end otherwise.
 * Serve writes its log once per event-loop turn, so a line caused by a client's command may reach the
 * output just after the client got its reply: wait for it.
 */
export async function printed(server: Served, pattern: RegExp, count = 1, timeoutMs = 30_000): Promise<void> {
  const global = new RegExp(pattern.source, "g");
  const matched = () => (server.output().match(global)?.length ?? 0) >= count;
  await waitFor(matched, `${count} x ${pattern}`, timeoutMs).catch((error: Error) => {
    const lines = server
      .output()
      .split("\n")
      .filter((line) => !line.includes("] Stored "));
    throw new Error(`${error.message}; the server printed:\n${lines.slice(-30).join("\n")}`);
  });
}
