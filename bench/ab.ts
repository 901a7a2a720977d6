/**
 * Before against after: the sink servers of two builds (two checkouts, each built), driven in
 * interleaved rounds by Postfix's smtp-source (2 KB messages, many per connection, no PIPELINING), so that
 * a change to the engine is judged against the code before it in the same conditions. Each variant is a
 * label, a build's bench/sink.js and a sink kind (see bench/sink.ts); every round runs each variant once,
 * in order, in a fresh child; the figures are medians of the rounds with the lowest and highest.
 *
 *   git worktree add /tmp/before <commit> && (cd /tmp/before && npm ci && npm run build)
 *   node build/bench/ab.js --rounds 7 --sessions 100 \
 *     before=/tmp/before/build/bench/sink.js:mailgate after=build/bench/sink.js:mailgate \
 *     floor=build/bench/sink.js:node-floor
 *
 * CPU per message is the server process's user and system time (/proc) over the run ÷ messages.
 */
import { fork, spawn } from "node:child_process";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { showSpread, spread } from "./report-format.js";
import { SMTP_SOURCE_PATH, smtpSourceArgs } from "./scenarios.js";
import { exited, readServerCpuSeconds } from "./util.js";

interface Variant {
  label: string;
  script: string;
  kind: string;
}

interface Round {
  rate: number;
  cpuMicros: number;
}

function parseVariant(text: string): Variant {
  const match = /^([^=]+)=(.+):([a-z0-9-]+)$/.exec(text);
  if (!match) throw new Error(`Invalid variant "${text}": write label=path/to/sink.js:kind.`);
  return { label: match[1] as string, script: resolve(match[2] as string), kind: match[3] as string };
}

/** One run: a fresh server of `variant`, `messages` messages over `sessions` sessions, then stopped. */
async function runOnce(variant: Variant, messages: number, sessions: number): Promise<Round> {
  const server = fork(variant.script, [variant.kind, JSON.stringify({ maxConnections: sessions + 100 })], {
    stdio: "ignore",
  });
  try {
    const port = await new Promise<number>((ready, fail) => {
      server.on("message", (message: { type?: string; port?: number }) => {
        if (message.type === "ready") ready(message.port as number);
      });
      server.once("exit", () => fail(new Error(`${variant.label}: the server exited before it listened`)));
    });
    const pid = server.pid as number;
    const cpuBefore = readServerCpuSeconds(pid);
    const started = process.hrtime.bigint();
    const scenario = { sessions, perConnection: "many", bodyBytes: 2048 } as const;
    const generator = spawn(SMTP_SOURCE_PATH, smtpSourceArgs(scenario, messages, port), { stdio: "ignore" });
    const code = await exited(generator);
    if (code !== 0) throw new Error(`${variant.label}: smtp-source failed (${code})`);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpuSeconds = readServerCpuSeconds(pid) - cpuBefore;
    return { rate: messages / seconds, cpuMicros: (cpuSeconds * 1e6) / messages };
  } finally {
    server.send({ type: "stop" });
    await exited(server);
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      rounds: { type: "string", default: "7" },
      sessions: { type: "string", default: "100" },
      messages: { type: "string", default: "20000" },
    },
  });
  const variants = positionals.map(parseVariant);
  if (variants.length === 0) throw new Error("Name at least one variant: label=path/to/sink.js:kind.");
  const [rounds, sessions, messages] = [values.rounds, values.sessions, values.messages].map(Number) as [
    number,
    number,
    number,
  ];
  const results = new Map<string, Round[]>(variants.map((variant) => [variant.label, []]));
  for (let round = 0; round < rounds; round++) {
    for (const variant of variants)
      results.get(variant.label)?.push(await runOnce(variant, messages, sessions));
  }
  const width = Math.max(...variants.map((variant) => variant.label.length));
  for (const variant of variants) {
    const runs = results.get(variant.label) ?? [];
    const rate = showSpread(spread(runs.map((run) => run.rate)), (value) => value.toFixed(0));
    const cpu = showSpread(spread(runs.map((run) => run.cpuMicros)), (value) => value.toFixed(0));
    process.stdout.write(`${variant.label.padEnd(width)}  ${rate} msg/s  ${cpu} µs CPU/msg\n`);
  }
  process.stdout.write(
    `(${rounds} interleaved rounds of ${messages} messages over ${sessions} sessions, median and spread)\n`,
  );
}

await main();
