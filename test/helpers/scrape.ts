/** Reading the operations endpoint of `mailgate serve --metrics-listen` from a test. */
import assert from "node:assert/strict";
import type { Served } from "./serve-process.js";

/** One sample's value from Prometheus text, 0 when the series is absent. */
export function sample(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

export async function get(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.text() };
}

/** The endpoint's "http://127.0.0.1:PORT" from the server's start output. */
export function endpointOf(served: Served): string {
  const match = /Operations endpoint on (http:\/\/127\.0\.0\.1:\d+) /.exec(served.output());
  assert.ok(match, served.output());
  return match[1] as string;
}
