/** `mailgate serve` run as a user runs it: the built CLI in a child process, its output collected. */
import { type ChildProcess, spawn } from "node:child_process";

export const MAIN = new URL("../../src/cli/main.js", import.meta.url).pathname;

export interface Served {
  child: ChildProcess;
  port: number;
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts `mailgate serve --ports 0 ...args` in `cwd`; resolves once it serves, with its SMTP port. */
export async function startServe(cwd: string, ...args: string[]): Promise<Served> {
  const child = spawn(process.execPath, [MAIN, "serve", "--ports", "0", ...args], { cwd, stdio: "pipe" });
  let output = "";
  child.stdout.on("data", (d) => {
    output += d;
  });
  child.stderr.on("data", (d) => {
    output += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${output}`)), 10_000);
    const check = () => {
      const match = /serving SMTP on 127\.0\.0\.1:(\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        child.stdout.off("data", check);
        resolve(Number(match[1]));
      }
    };
    child.stdout.on("data", check);
    child.on("exit", () => reject(new Error(`serve exited:\n${output}`)));
  });
  return { child, port, output: () => output, exited };
}
