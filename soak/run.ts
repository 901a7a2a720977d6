/**
 * The soak (`npm run soak`, outside `npm test`): many messages over many concurrent sessions against
 * `mailgate serve` as a child process storing into a real Maildir, with random sizes (1 KB to 200 KB,
 * log-uniform, and a few of 2 MB), random pipelining (MAIL, RCPT and DATA in one write), messages sent in
 * one or two writes, and random disconnects (in the middle of the content, or right after the final dot
 * before the reply is read). Every message carries a unique id in its Subject.
 *
 * At the end the server is stopped gracefully (SIGTERM, exit status 0 expected) and the Maildir is
 * checked against what every client saw:
 * - every message a client saw acknowledged (250) is stored exactly once with identical bytes;
 * - nothing else is stored, except messages whose final dot was sent by a client that then dropped the
 *   connection itself ("stored, ack not seen": the 250 was on its way);
 * - every file in new/ is complete (its S= size is its size) and byte-identical to what was sent.
 * The server's RSS (/proc/<pid>/status VmRSS) is sampled every second: the median over the few seconds
 * after warm-up is compared with the median over the last few seconds of the load.
 *
 *   npm run soak                                       # 100,000 messages over 50 sessions
 *   npm run build && node build/soak/run.js --messages 5000 --sessions 20
 *
 * Flags: --messages N (100000), --sessions N (50), --seed N (1), --warmup N (min(10000, messages/5)),
 * --drop-mid-data P (0.01), --drop-after-dot P (0.01), --pipelining P (0.5), --big P (0.002: share of
 * 2 MB messages), --keep (keep the Maildir; it is deleted after the check), --drop-pause MS (0): a
 * client about to drop idles MS ms first (mid-DATA: between its partial content and the drop; after the
 * dot: between the 354 and its content), so that its drop never lands while the store is still opening
 * its file.
 *
 * Exit status: 0 when nothing was lost, duplicated, altered or stored unexpectedly and the server
 * stayed up and stopped cleanly; 1 otherwise. The RSS verdict is printed, not part of the status.
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  buildMessage,
  judge,
  type LedgerEntry,
  listTmp,
  readMaildirNew,
  readRss,
  runLoad,
  seededRandom,
  sleep,
  startServe,
  TextPool,
} from "../test/hostile/harness.js";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MiB = 1024 * 1024;

function flags() {
  const { values } = parseArgs({
    options: {
      messages: { type: "string", default: "100000" },
      sessions: { type: "string", default: "50" },
      seed: { type: "string", default: "1" },
      warmup: { type: "string" },
      "drop-mid-data": { type: "string", default: "0.01" },
      "drop-after-dot": { type: "string", default: "0.01" },
      "drop-pause": { type: "string", default: "0" },
      pipelining: { type: "string", default: "0.5" },
      big: { type: "string", default: "0.002" },
      keep: { type: "boolean", default: false },
    },
  });
  const number = (name: keyof typeof values, text: string | undefined, min: number, max: number) => {
    const value = Number(text);
    if (text === undefined || !Number.isFinite(value) || value < min || value > max) {
      throw new Error(`--${name} must be a number from ${min} to ${max}, not ${JSON.stringify(text)}`);
    }
    return value;
  };
  const messages = Math.floor(number("messages", values.messages, 1, 10_000_000));
  return {
    messages,
    sessions: Math.floor(number("sessions", values.sessions, 1, 900)),
    seed: Math.floor(number("seed", values.seed, 0, 2 ** 31)),
    warmup: Math.floor(
      number("warmup", values.warmup ?? String(Math.min(10_000, Math.floor(messages / 5))), 0, messages),
    ),
    dropMidData: number("drop-mid-data", values["drop-mid-data"], 0, 1),
    dropAfterDot: number("drop-after-dot", values["drop-after-dot"], 0, 1),
    dropPause: number("drop-pause", values["drop-pause"], 0, 60_000),
    pipelining: number("pipelining", values.pipelining, 0, 1),
    big: number("big", values.big, 0, 1),
    keep: values.keep === true,
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : (sorted[Math.floor(sorted.length / 2)] as number);
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

async function main(): Promise<number> {
  const options = flags();
  const started = new Date();
  const dir = join(REPO_ROOT, ".bench-tmp", `soak-${started.toISOString().replace(/[:.]/g, "-")}`);
  const maildir = join(dir, "mail");
  await mkdir(dir, { recursive: true });
  console.log(
    `soak: ${options.messages} messages over ${options.sessions} sessions into ${maildir} ` +
      `(seed ${options.seed}, drops ${options.dropMidData} mid-DATA / ${options.dropAfterDot} after the dot)`,
  );

  const random = seededRandom(options.seed);
  const pool = new TextPool(8 * MiB, seededRandom(options.seed + 1));
  const served = await startServe(maildir);
  let serverDied = false;
  void served.exited.then(() => {
    serverDied = true;
  });

  // RSS samples, one a second, with the number of messages acknowledged by then.
  let acked = 0;
  let handedOut = 0;
  let bytesSent = 0;
  let bigMessages = 0;
  const samples: { acked: number; rss: number }[] = [];
  let lastReport = Date.now();
  const sampler = setInterval(() => {
    if (serverDied) return;
    readRss(served.pid).then(
      (rss) => {
        samples.push({ acked, rss });
        if (Date.now() - lastReport >= 10_000) {
          lastReport = Date.now();
          const seconds = (Date.now() - started.getTime()) / 1000;
          console.log(
            `  ${acked} acknowledged of ${options.messages} after ${seconds.toFixed(0)} s ` +
              `(${(acked / seconds).toFixed(0)}/s), server RSS ${mib(rss)}`,
          );
        }
      },
      () => {},
    );
  }, 1000);

  const loadStarted = Date.now();
  const result = await runLoad({
    port: served.port,
    sessions: options.sessions,
    random,
    nextMessage: () => {
      if (handedOut >= options.messages || serverDied) return null;
      handedOut++;
      const big = random() < options.big;
      if (big) bigMessages++;
      const size = big
        ? 2_000_000
        : Math.floor(Math.exp(Math.log(1024) + random() * (Math.log(200 * 1024) - Math.log(1024))));
      const id = `soak${options.seed}-${handedOut}`;
      const message = buildMessage(id, pool.lines(size, random));
      bytesSent += message.length;
      return { id, message };
    },
    perConnection: [1, 30],
    pipelining: options.pipelining,
    split: 0.3,
    dropMidData: options.dropMidData,
    dropAfterDot: options.dropAfterDot,
    dropPause: options.dropPause,
    shouldStop: () => serverDied,
    onAck: () => acked++,
  });
  const loadSeconds = (Date.now() - loadStarted) / 1000;
  clearInterval(sampler);
  let idleRss = Number.NaN;
  let peakRss = Number.NaN;
  if (!serverDied) {
    await sleep(2000);
    idleRss = await readRss(served.pid).catch(() => Number.NaN);
    const status = await readFile(`/proc/${served.pid}/status`, "utf8").catch(() => "");
    peakRss = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN) * 1024;
    served.child.kill("SIGTERM");
  }
  const exit = await served.exited;

  console.log("checking the Maildir...");
  const checkStarted = Date.now();
  const files = await readMaildirNew(maildir);
  const verdict = judge(result.ledger, files);
  const tmpLeft = await listTmp(maildir);
  const checkSeconds = (Date.now() - checkStarted) / 1000;

  const entries = [...result.ledger.values()];
  const count = (predicate: (entry: LedgerEntry) => boolean) => entries.filter(predicate).length;
  const abortedByClient = count((e) => e.state === "partial" && e.droppedByClient);
  const droppedAfterDot = count((e) => e.state === "dot" && e.droppedByClient);
  // A final dot with no reply and no drop of our own: the server failed to answer.
  const unanswered = count((e) => e.state === "dot" && !e.droppedByClient);

  // RSS: median of the first 5 samples after warm-up, against the median of the last 5 under load.
  const warmSamples = samples.filter((s) => s.acked >= options.warmup).slice(0, 5);
  const endSamples = samples.slice(-5);
  const warmRss = median(warmSamples.map((s) => s.rss));
  const endRss = median(endSamples.map((s) => s.rss));
  const ratio = endRss / warmRss;
  const rssOk = Math.abs(ratio - 1) <= 0.2;

  const dataSafe =
    verdict.lost.length === 0 &&
    verdict.duplicates.length === 0 &&
    verdict.corrupt.length === 0 &&
    verdict.storedUnexpectedly.length === 0 &&
    unanswered === 0;
  // The server must have lived until our SIGTERM and then stopped cleanly.
  const stoppedOk = exit.code === 0 && exit.signal === null;

  const rows: [string, string | number][] = [
    ["messages planned", options.messages],
    ["transactions started", entries.length],
    ["sent (final dot written)", verdict.states.dot + verdict.states.acked + verdict.states.refused],
    ["acknowledged (250 seen)", verdict.states.acked],
    ["refused after the data (not 250)", verdict.states.refused],
    ["aborted by the client mid-DATA", abortedByClient],
    ["dropped by the client after the dot", droppedAfterDot],
    ["stored (files in new/)", files.length],
    ["stored, ack not seen", verdict.storedAckNotSeen],
    ["lost (acknowledged, not stored)", verdict.lost.length],
    ["duplicates", verdict.duplicates.length],
    ["corrupt or incomplete files", verdict.corrupt.length],
    ["stored although never completed", verdict.storedUnexpectedly.length],
    ["final dot unanswered (no drop of ours)", unanswered],
    ["files left in tmp/", tmpLeft.length],
    [
      "unexpected replies / connection failures",
      `${sumValues(result.unexpectedReplies)} / ${result.connectionFailures}`,
    ],
    ["server", !stoppedOk ? `DIED (${JSON.stringify(exit)})` : `stopped by SIGTERM, ${JSON.stringify(exit)}`],
    [
      "load duration",
      `${loadSeconds.toFixed(1)} s (${(verdict.states.acked / loadSeconds).toFixed(0)} msg/s, ${(bytesSent / MiB / loadSeconds).toFixed(1)} MiB/s)`,
    ],
    ["bytes sent (messages of 2 MB among them)", `${mib(bytesSent)} (${bigMessages})`],
    [`RSS after warm-up (${options.warmup} acked; median of ${warmSamples.length} samples)`, mib(warmRss)],
    [`RSS at the end of the load (median of the last ${endSamples.length})`, mib(endRss)],
    ["RSS end / warm-up", `${ratio.toFixed(3)} (${rssOk ? "within" : "NOT within"} 20%)`],
    ["RSS idle after the load / peak (VmHWM)", `${mib(idleRss)} / ${mib(peakRss)}`],
    ["Maildir check", `${checkSeconds.toFixed(1)} s`],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  console.log(`\n${"-".repeat(width + 30)}`);
  for (const [name, value] of rows) console.log(`${name.padEnd(width)}  ${value}`);
  console.log("-".repeat(width + 30));
  if (result.unexpectedReplies.size > 0) {
    console.log(`unexpected replies: ${JSON.stringify(Object.fromEntries(result.unexpectedReplies))}`);
  }
  for (const [label, list] of [
    ["lost", verdict.lost],
    ["duplicates", verdict.duplicates],
    ["corrupt", verdict.corrupt],
    ["stored unexpectedly", verdict.storedUnexpectedly],
  ] as const) {
    if (list.length > 0)
      console.log(`${label}: ${list.slice(0, 20).join(", ")}${list.length > 20 ? " ..." : ""}`);
  }
  if (!stoppedOk) {
    console.log(`\nthe server died; its last output:\n${served.output().split("\n").slice(-30).join("\n")}`);
  }

  await writeFile(
    join(dir, "summary.json"),
    `${JSON.stringify(
      {
        options,
        started: started.toISOString(),
        rows: Object.fromEntries(rows),
        lost: verdict.lost,
        duplicates: verdict.duplicates,
        corrupt: verdict.corrupt.slice(0, 100),
        storedUnexpectedly: verdict.storedUnexpectedly.slice(0, 100),
        unexpectedReplies: Object.fromEntries(result.unexpectedReplies),
        rssSamples: samples,
      },
      null,
      2,
    )}\n`,
  );
  if (!options.keep) await rm(maildir, { recursive: true, force: true });
  console.log(`summary: ${join(dir, "summary.json")}${options.keep ? `; Maildir kept in ${maildir}` : ""}`);

  const ok = dataSafe && stoppedOk;
  console.log(ok ? "SOAK PASSED" : "SOAK FAILED");
  return ok ? 0 : 1;
}

function sumValues(map: Map<string, number>): number {
  let sum = 0;
  for (const value of map.values()) sum += value;
  return sum;
}

main().then(
  (status) => {
    process.exitCode = status;
  },
  (error: unknown) => {
    console.error(`soak: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 2;
  },
);
