/**
 * "## Sinks (issue 19)": `mailgate serve --sink` beside the discarding hook of the same run and each sink's
 * ceiling (its client library publishing the same messages directly), with issue 19's targets; and, when
 * `mailgate-serve-null` ran, what of the CPU the sink "adds" is `mailgate serve`'s own work for any store
 * and what is the sink's.
 */
import {
  cpuPerMessage,
  int,
  type RunFacts,
  ratio,
  runLine,
  type Spread,
  sharedMachineNote,
  showSpread,
  spread,
  table,
} from "./report-format.js";
import type { IdleSample, MessageSample, Scenario, SinkCeilingSample } from "./scenarios.js";
import { SERVER_SPECS, type ServerId } from "./servers.js";
import { sinkBackend } from "./sink-backends.js";
import { formatBytes, median } from "./util.js";

/** The one scenario where the sink servers (issue 19) and the workers servers (issue 21) run. */
export const SINK_SCENARIO = "2k-s100-many-nopipe";

/** What this section reads of a scenario's results. */
interface SinkResult {
  scenario: Scenario;
  servers: ServerId[];
  samples: Partial<Record<ServerId, (MessageSample | IdleSample)[]>>;
  sinkCeilings: Partial<Record<ServerId, SinkCeilingSample[]>>;
  leftOut: string[];
}

interface SinkFigures {
  server: ServerId;
  name: string;
  runs: number;
  rate: Spread;
  /** mailgate serve's CPU time per message, in microseconds. */
  cpuPerMessage: Spread;
  /** The discarding hook's, in the same scenario (median). */
  hookCpuPerMessage: number;
  /** What the sink adds: cpuPerMessage's median − hookCpuPerMessage. */
  addedCpuPerMessage: number;
  /** `mailgate serve` into nothing (mailgate-serve-null), median; NaN when it did not run. */
  serveCpuPerMessage: number;
  hookRate: number;
  ceilingRuns: number;
  ceilingRate: Spread;
  /** The direct publisher's CPU time per message, in microseconds. */
  ceilingCpuPerMessage: Spread;
  /** The highest VmHWM of mailgate serve's runs. */
  peakRss: number;
}

interface Target {
  what: string;
  measured: string;
  /** Undefined for a figure shown beside the targets for information. */
  required: string | undefined;
  met: boolean | undefined;
}

function messageSamples(result: SinkResult, server: ServerId): MessageSample[] {
  return (result.samples[server] as MessageSample[] | undefined) ?? [];
}

/** The median CPU µs per message and msg/s of `server`'s runs (NaN when it did not run). */
function medians(result: SinkResult, server: ServerId): { cpu: number; rate: number } {
  const samples = messageSamples(result, server);
  if (samples.length === 0) return { cpu: Number.NaN, rate: Number.NaN };
  return { cpu: median(samples.map(cpuPerMessage)), rate: median(samples.map((s) => s.messagesPerSecond)) };
}

function sinkFigures(result: SinkResult): SinkFigures[] {
  const hook = medians(result, "mailgate");
  const serve = medians(result, "mailgate-serve-null");
  const figures: SinkFigures[] = [];
  for (const server of result.servers) {
    const backend = sinkBackend(server);
    const samples = messageSamples(result, server);
    if (!backend || samples.length === 0) continue;
    const ceilings = result.sinkCeilings[server] ?? [];
    const serverCpu = spread(samples.map(cpuPerMessage));
    figures.push({
      server,
      name: backend.name,
      runs: samples.length,
      rate: spread(samples.map((s) => s.messagesPerSecond)),
      cpuPerMessage: serverCpu,
      hookCpuPerMessage: hook.cpu,
      addedCpuPerMessage: serverCpu.median - hook.cpu,
      serveCpuPerMessage: serve.cpu,
      hookRate: hook.rate,
      ceilingRuns: ceilings.length,
      ceilingRate: spread(ceilings.map((c) => c.messagesPerSecond)),
      ceilingCpuPerMessage: spread(ceilings.map((c) => (c.publisherCpu * c.elapsedMs * 1000) / c.messages)),
      peakRss: Math.max(...samples.map((s) => s.peakRss)),
    });
  }
  return figures;
}

/** Issue 19's targets for each sink measured. */
function sinkTargets(figures: SinkFigures[]): Target[] {
  return figures.flatMap((f) => {
    const added = f.addedCpuPerMessage / f.ceilingCpuPerMessage.median;
    return [
      {
        what: `${f.name}: CPU the sink adds per message (\`${f.server}\` − \`mailgate\`) ÷ the direct publisher's`,
        measured: ratio(added),
        required: "≤ 1.2x",
        met: Number.isFinite(added) ? added <= 1.2 : undefined,
      },
      {
        what: `${f.name}: \`${f.server}\` peak RSS (highest of ${f.runs} runs)`,
        measured: formatBytes(f.peakRss),
        required: "< 150 MB",
        met: Number.isFinite(f.peakRss) ? f.peakRss < 150 * 2 ** 20 : undefined,
      },
      {
        what: `${f.name}: msg/s ÷ the discarding hook's`,
        measured: ratio(f.rate.median / f.hookRate),
        required: undefined,
        met: undefined,
      },
      {
        what: `${f.name}: msg/s ÷ the direct publisher's (ceiling)`,
        measured: ratio(f.rate.median / f.ceilingRate.median),
        required: undefined,
        met: undefined,
      },
    ];
  });
}

/** "What is the sink's own": each sink beside `mailgate serve` into nothing, when that ran. */
function ownShareTable(figures: SinkFigures[], hookCpu: number): string[] {
  const measured = figures.filter((f) => Number.isFinite(f.serveCpuPerMessage));
  const first = measured[0];
  if (!first) return [];
  return [
    `\`mailgate-serve-null\` is \`mailgate serve\`'s server (\`createStoringServer\`: the Received header, the message id, the session facts, one log line, the message received through \`onMessageStream\`) storing into a store that reads each message whole, as the broker sinks do, and keeps nothing. It took ${int(first.serveCpuPerMessage)} µs/msg (median) against the discarding hook's ${int(hookCpu)}: that difference is in every sink's "added" figure above, whatever the sink. What remains is the sink's own work (its client library, its window and confirms):`,
    "",
    table(
      [
        "sink",
        "serve into nothing − hook µs/msg",
        "sink's own (serve with the sink − serve into nothing) µs/msg",
        "publisher CPU µs/msg",
        "sink's own ÷ publisher",
      ],
      measured.map((f) => {
        const own = f.cpuPerMessage.median - f.serveCpuPerMessage;
        return [
          f.name,
          int(f.serveCpuPerMessage - f.hookCpuPerMessage),
          int(own),
          int(f.ceilingCpuPerMessage.median),
          ratio(own / f.ceilingCpuPerMessage.median),
        ];
      }),
    ),
    "",
  ];
}

/** "## Sinks": `mailgate serve --sink` beside the discarding hook and each sink's ceiling, with issue 19's targets. */
export function sinksSection(results: readonly SinkResult[], run: RunFacts): string {
  const result = results.find((r) => r.scenario.id === SINK_SCENARIO);
  if (!result) return "";
  const figures = sinkFigures(result);
  const { leftOut } = result;
  if (figures.length === 0 && leftOut.length === 0) return "";
  const sessions = result.scenario.kind === "messages" ? result.scenario.sessions : undefined;
  const lines = [
    "## Sinks (issue 19)",
    "",
    `\`mailgate serve --sink\` in scenario \`${SINK_SCENARIO}\` (${result.scenario.title}), beside the discarding hook (\`mailgate\`) of the same run and each sink's ceiling: the same 2 KB messages published directly by the client library, ${sessions} in flight, no SMTP, run right before each run of its sink's server (the servers' order rotates run by run). Medians of the runs, with the lowest and highest in brackets. CPU per message is the process's CPU time ÷ messages: mailgate's for the servers, the publisher's own for the ceilings (the broker's and the endpoint's are never counted). ${runLine(run)}`,
    "",
    ...sharedMachineNote(run),
  ];
  if (figures.length > 0) {
    lines.push(
      table(
        [
          "sink",
          "runs (server / ceiling)",
          "msg/s",
          "ceiling msg/s",
          "÷ hook msg/s",
          "÷ ceiling msg/s",
          "mailgate CPU µs/msg",
          "hook CPU µs/msg",
          "added by the sink µs/msg",
          "publisher CPU µs/msg",
          "added ÷ publisher (≤ 1.2x)",
          "peak RSS, highest run (< 150 MB)",
        ],
        figures.map((f) => [
          `${f.name} (\`${f.server}\`)`,
          `${f.runs} / ${f.ceilingRuns}`,
          showSpread(f.rate),
          showSpread(f.ceilingRate),
          ratio(f.rate.median / f.hookRate),
          ratio(f.rate.median / f.ceilingRate.median),
          showSpread(f.cpuPerMessage),
          int(f.hookCpuPerMessage),
          int(f.addedCpuPerMessage),
          showSpread(f.ceilingCpuPerMessage),
          ratio(f.addedCpuPerMessage / f.ceilingCpuPerMessage.median),
          formatBytes(f.peakRss),
        ]),
      ),
      "",
      table(
        ["target", "measured", "required", "met"],
        sinkTargets(figures).map((t) =>
          t.required === undefined
            ? [t.what, t.measured, "(reported, not targeted)", ""]
            : [t.what, t.measured, t.required, t.met === undefined ? "n/a" : t.met ? "yes" : "**no**"],
        ),
      ),
      "",
      ...ownShareTable(figures, figures[0]?.hookCpuPerMessage ?? Number.NaN),
    );
    for (const f of figures) {
      const backend = sinkBackend(f.server);
      lines.push(`- ${f.name}: ${SERVER_SPECS[f.server].description}. Ceiling: ${backend?.ceiling}.`);
    }
    lines.push(
      "",
      '"Added by the sink" is everything `mailgate serve --sink` spends per message beyond the discarding hook: the sink\'s client library, and also what the CLI does for any store (the Received header, the session facts, one log line per message). The HTTP endpoint is `examples/http-receiver.ts` in its own child process (`MAILGATE_SINK_SECRET=... node build/bench/sink.js http-endpoint`) with a store that reads each message and keeps nothing: it checks every signature with `verifyHttpSinkSignature` and answers 200. Each RabbitMQ run publishes into an exchange and quorum queue of its own, each NATS run into a stream of its own (file storage), declared before the run and deleted with their messages after it; a run counts only if the queue, the stream or the endpoint holds exactly the messages that got a 250 (or, for a ceiling, a confirm).',
      "",
    );
  }
  for (const note of leftOut) lines.push(`Left out: ${note}.`, "");
  if (figures.length > 0) lines.push("Commands (PORT and `<run>` differ from run to run):", "");
  for (const f of figures) {
    const server = (result.samples[f.server]?.[0] as MessageSample | undefined)?.command;
    const ceiling = result.sinkCeilings[f.server]?.[0]?.command;
    if (server) lines.push(`- \`${f.server}\`: \`${server}\``);
    if (ceiling) lines.push(`- its ceiling: \`${ceiling}\``);
  }
  if (figures.length > 0) lines.push("");
  return lines.join("\n");
}
