/**
 * The fuzz targets, one module each, as `npm run fuzz` and the corpus replay in `npm test` find them.
 * Each module exports `fuzz(data: Buffer)`, Jazzer.js's entry point; its corpus is fuzz/corpus/<name>/.
 */
import { fileURLToPath } from "node:url";

export interface FuzzTarget {
  name: string;
  /** What it fuzzes, for the runner's summary. */
  subject: string;
  /** True when fuzz() returns nothing (Jazzer.js's faster --sync mode); false when it returns a promise. */
  sync: boolean;
  /** libFuzzer's -max_len: the longest input worth trying. */
  maxLength: number;
}

export const FUZZ_TARGETS: readonly FuzzTarget[] = [
  { name: "session", subject: "SMTP/LMTP session, bytes at random splits", sync: false, maxLength: 4096 },
  { name: "proxy", subject: "PROXY protocol v1/v2 parser", sync: true, maxLength: 1024 },
  { name: "sasl", subject: "AUTH arguments, base64, SASL exchanges", sync: true, maxLength: 16384 },
  {
    name: "data-decoder",
    subject: "DATA decoder (dot-unstuffing, end, CRLF modes)",
    sync: true,
    maxLength: 4096,
  },
  { name: "chunk-reader", subject: "BDAT chunk reader", sync: true, maxLength: 4096 },
];

/** The repository's root, from build/fuzz/targets/ or fuzz/targets/ alike. */
export const REPOSITORY_ROOT = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/build\/$/, "/");

export function targetModule(target: FuzzTarget): string {
  return fileURLToPath(new URL(`./${target.name}.js`, import.meta.url));
}

export function corpusDirectory(target: FuzzTarget): string {
  return `${REPOSITORY_ROOT}fuzz/corpus/${target.name}`;
}

export async function loadTarget(target: FuzzTarget): Promise<(data: Buffer) => void | Promise<void>> {
  const module = (await import(targetModule(target))) as { fuzz: (data: Buffer) => void | Promise<void> };
  return module.fuzz;
}
