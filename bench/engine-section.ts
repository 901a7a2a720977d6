/**
 * "## Engine (issue 18)": the library's two ways of taking a message, side by side in the same interleaved
 * rounds: `mailgate` (onMessageData, the buffered message discarded) and `mailgate-stream` (onMessageStream,
 * the stream drained), each beside node-floor, the least work a Node server can do per command. Ratios are
 * taken round by round (each round ran the servers one after the other), then their median and spread.
 */
import {
  cpuPerMessage,
  type RunFacts,
  ratio,
  runLine,
  sharedMachineNote,
  showSpread,
  spread,
  table,
} from "./report-format.js";
import type { IdleSample, MessageSample, Scenario } from "./scenarios.js";
import type { ServerId } from "./servers.js";

/** The scenarios issue 18 measures: 2 KB, many messages per connection, no PIPELINING, 1 and 100 sessions. */
export const ENGINE_SCENARIOS = /^2k-s(1|100)-many-nopipe$/;
export const ENGINE_SERVERS: readonly ServerId[] = [
  "mailgate",
  "mailgate-stream",
  "mailgate-stream-events",
  "node-floor",
  "node-floor-stream",
];

/** Issue 18's targets. */
const STREAM_TO_DATA = 0.95;
const TO_FLOOR = 0.85;

interface EngineResult {
  scenario: Scenario;
  samples: Partial<Record<ServerId, (MessageSample | IdleSample)[]>>;
}

function rates(result: EngineResult, server: ServerId): MessageSample[] {
  return (result.samples[server] as MessageSample[] | undefined) ?? [];
}

/** `a ÷ b` for each round in which both ran (rounds keep their order in the samples). */
function perRound(a: MessageSample[], b: MessageSample[]): number[] {
  const rounds = Math.min(a.length, b.length);
  return Array.from(
    { length: rounds },
    (_, i) => (a[i] as MessageSample).messagesPerSecond / (b[i] as MessageSample).messagesPerSecond,
  );
}

export function engineSection(results: readonly EngineResult[], run: RunFacts): string {
  const rows: string[][] = [];
  const floorRows: string[][] = [];
  const targets: string[][] = [];
  for (const result of results) {
    if (!ENGINE_SCENARIOS.test(result.scenario.id)) continue;
    const data = rates(result, "mailgate");
    const stream = rates(result, "mailgate-stream");
    if (data.length === 0 || stream.length === 0) continue;
    const floor = rates(result, "node-floor");
    const events = rates(result, "mailgate-stream-events");
    const msgs = (samples: MessageSample[]) =>
      samples.length ? showSpread(spread(samples.map((s) => s.messagesPerSecond))) : "n/a";
    const cpu = (samples: MessageSample[]) => showSpread(spread(samples.map(cpuPerMessage)));
    const ratioOf = (values: number[]) => (values.length ? showSpread(spread(values), ratio) : "n/a");
    const streamToData = perRound(stream, data);
    const dataToFloor = perRound(data, floor);
    const streamToFloor = perRound(stream, floor);
    const id = `\`${result.scenario.id}\``;
    rows.push([
      id,
      String(Math.min(data.length, stream.length)),
      msgs(data),
      msgs(stream),
      msgs(floor),
      ratioOf(streamToData),
      ratioOf(dataToFloor),
      ratioOf(streamToFloor),
      cpu(data),
      cpu(stream),
      msgs(events),
      ratioOf(perRound(events, data)),
      events.length ? cpu(events) : "n/a",
    ]);
    const floorStream = rates(result, "node-floor-stream");
    if (floorStream.length > 0 && floor.length > 0) {
      floorRows.push([
        id,
        msgs(floor),
        msgs(floorStream),
        ratioOf(perRound(floorStream, floor)),
        cpu(floor),
        cpu(floorStream),
        ratioOf(streamToData),
        ratioOf(perRound(stream, floorStream)),
      ]);
    }
    const target = (what: string, values: number[], required: number) => {
      if (values.length === 0) return;
      const measured = spread(values).median;
      targets.push([
        `${id}: ${what}`,
        ratio(measured),
        `≥ ${required.toFixed(2)}x`,
        measured >= required ? "yes" : "**no**",
      ]);
    };
    target("`mailgate-stream` ÷ `mailgate`", streamToData, STREAM_TO_DATA);
    target("`mailgate` ÷ `node-floor`", dataToFloor, TO_FLOOR);
    target("`mailgate-stream` ÷ `node-floor`", streamToFloor, TO_FLOOR);
  }
  if (rows.length === 0) return "";
  return [
    "## Engine (issue 18): onMessageStream against onMessageData",
    "",
    `\`mailgate\` (an onMessageData hook that discards the buffered message) and \`mailgate-stream\` (an onMessageStream hook that drains the stream), each beside \`node-floor\`, in the same interleaved rounds; \`mailgate-stream-events\` drains the same stream with 'data' and 'end' listeners instead of \`for await\` (informative: the difference between the two stream servers is the consumer's idiom, Node's async iterator, not the engine; the targets use \`mailgate-stream\`); messages/s are medians with the lowest and highest round in brackets, ratios are taken round by round and then their median (lowest–highest). ${runLine(run)} \`npm run bench:engine\` runs just these.`,
    "",
    ...sharedMachineNote(run),
    table(
      [
        "scenario",
        "rounds",
        "`mailgate` msg/s",
        "`mailgate-stream` msg/s",
        "`node-floor` msg/s",
        "stream ÷ data",
        "data ÷ floor",
        "stream ÷ floor",
        "`mailgate` CPU µs/msg",
        "`mailgate-stream` CPU µs/msg",
        "`mailgate-stream-events` msg/s",
        "events ÷ data",
        "`mailgate-stream-events` CPU µs/msg",
      ],
      rows,
    ),
    "",
    table(["target", "measured (median of rounds)", "required", "met"], targets),
    "",
    ...(floorRows.length > 0
      ? [
          "What handing a message over as a Readable costs a server that does nothing else: `node-floor-stream` is `node-floor` that also pushes each message's bytes into a Readable, drained with `for await` as `mailgate-stream`'s hook drains it, and answers 250 once the drain ends. Its ratio to `node-floor` is the most that any Node server whose consumer reads a Readable this way can reach against one that does not; `mailgate-stream`'s stream ÷ data is beside it.",
          "",
          table(
            [
              "scenario",
              "`node-floor` msg/s",
              "`node-floor-stream` msg/s",
              "floor: stream ÷ data",
              "`node-floor` CPU µs/msg",
              "`node-floor-stream` CPU µs/msg",
              "mailgate: stream ÷ data",
              "`mailgate-stream` ÷ `node-floor-stream`",
            ],
            floorRows,
          ),
          "",
        ]
      : []),
  ].join("\n");
}
