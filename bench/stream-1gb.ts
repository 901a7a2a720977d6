/**
 * Issue 2's measurement: one 1 GB message sent to a mailgate server (a child process) whose
 * onMessageStream hook drains the stream; prints the server's peak RSS (VmHWM) and the throughput.
 *
 *   npm run build && node build/bench/stream-1gb.js [--mb 1024] [--runs 1]
 *
 * The message is written in 1 MiB buffers of 78-character lines with backpressure, from this process.
 * Exits 1 if the server did not accept the message, never because of a figure.
 */
import { parseArgs } from "node:util";
import { sendMessages } from "./load.js";
import { startServer } from "./servers.js";
import { formatBytes, MiB, sleep } from "./util.js";

async function once(mb: number, run: number): Promise<void> {
  const server = await startServer("mailgate-stream", {
    maxConnections: 100,
    tag: `stream-1gb-${process.pid}-${run}`,
  });
  try {
    await sleep(200);
    const before = server.memory();
    const cpu0 = server.cpuSeconds();
    const result = await sendMessages({
      port: server.port,
      sessions: 1,
      messages: 1,
      perConnection: "one",
      pipelining: true,
      bodyBytes: mb * MiB,
    });
    const after = server.memory();
    const cpu = server.cpuSeconds() - cpu0;
    const received = await server.finish();
    if (received !== 1 || result.sent !== 1)
      throw new Error(`the server accepted ${received} message(s), not 1`);
    const seconds = result.elapsedMs / 1000;
    process.stdout.write(
      [
        `mailgate onMessageStream (drain), one message of ${formatBytes(result.bytes)} (${result.bytes} bytes), run ${run}:`,
        `  time        ${seconds.toFixed(2)} s, ${(result.bytes / MiB / seconds).toFixed(0)} MB/s`,
        `  server RSS  ${formatBytes(before.current)} before, peak (VmHWM) ${formatBytes(after.peak)}, ${formatBytes(after.current)} after`,
        `  server CPU  ${cpu.toFixed(2)} s (${Math.round((cpu / seconds) * 100)}% of one core)`,
        `  peak RSS under 100 MB (issue 2): ${after.peak < 100 * MiB ? "yes" : "NO"}`,
        "",
      ].join("\n"),
    );
  } catch (error) {
    server.kill();
    throw error;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { mb: { type: "string", default: "1024" }, runs: { type: "string", default: "1" } },
  });
  const mb = Number(values.mb);
  const runs = Number(values.runs);
  if (!Number.isSafeInteger(mb) || mb < 1 || !Number.isSafeInteger(runs) || runs < 1) {
    throw new Error("--mb and --runs take whole numbers of at least 1.");
  }
  for (let run = 1; run <= runs; run++) await once(mb, run);
}

main().catch((error: unknown) => {
  process.stderr.write(`stream-1gb: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
