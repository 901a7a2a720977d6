/**
 * Makes Jazzer.js 4.0.0's linux-x64 engine load on Debian 12 (glibc 2.36, libstdc++ of GCC 12).
 *
 * Its prebuilt addon (node_modules/@jazzer.js/fuzzer/prebuilds/fuzzer-linux-x64.node, libFuzzer inside)
 * was linked on a newer system and names two symbol versions this one lacks:
 *   - GLIBC_2.38 for __isoc23_strtol and __isoc23_strtoul, the C23 spellings of strtol and strtoul (they
 *     differ only in reading "0b" prefixes, which libFuzzer's flag parsing never meets);
 *   - GLIBCXX_3.4.32 for std::ios_base_library_init(), which GCC 13's <iostream> only references (no
 *     relocation uses it; Node's own libstdc++ initialises the streams).
 * The loader refuses the whole file for those. The patch, on the ELF's dynamic tables only: both version
 * requirements become weak (a missing weak version is no error), and the two C23 imports become the plain
 * strtol and strtoul (their names are the tails of the C23 ones in the string table), unversioned. It is
 * applied only when loading fails for exactly these versions, only to an unmodified file of the expected
 * shape, and checked by loading the result; anything else is reported, never guessed at.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const MISSING_VERSIONS = ["GLIBC_2.38", "GLIBCXX_3.4.32"];
const C23_PREFIX = "__isoc23_";
const SHT_DYNSYM = 11;
const SHT_GNU_VERNEED = 0x6ffffffe;
const SHT_GNU_VERSYM = 0x6fffffff;
const VER_FLG_WEAK = 0x2;
const VER_NDX_GLOBAL = 1;

/** The engine's addon for this platform. */
export function prebuildPath(): string {
  const require = createRequire(import.meta.url);
  const root = dirname(require.resolve("@jazzer.js/fuzzer/package.json"));
  return join(root, "prebuilds", `fuzzer-${process.platform}-${process.arch}.node`);
}

/** Why the addon does not load in a fresh Node process, or null when it does. */
function loadError(path: string): string | null {
  try {
    execFileSync(process.execPath, ["-e", `require(${JSON.stringify(path)})`], { stdio: "pipe" });
    return null;
  } catch (error) {
    return String((error as { stderr?: Buffer }).stderr ?? error);
  }
}

/**
 * Ensures the engine loads; patches it once when it fails only for the versions above. Returns what it
 * did, for the runner to print; throws a sentence saying what to do when the engine cannot be used.
 */
export function ensureEngineLoads(): string {
  const path = prebuildPath();
  const before = loadError(path);
  if (before === null) return "Jazzer.js's engine loads";
  const missing = [...before.matchAll(/version `([^']+)' not found/g)].map((match) => match[1]);
  if (missing.length === 0 || !missing.every((version) => MISSING_VERSIONS.includes(version as string))) {
    throw new Error(`Jazzer.js's engine (${path}) does not load here: ${before.trim().split("\n")[0]}`);
  }
  const patched = patchVersionRequirements(readFileSync(path));
  writeFileSync(`${path}.tmp`, patched);
  renameSync(`${path}.tmp`, path);
  const after = loadError(path);
  if (after !== null) {
    throw new Error(
      `Jazzer.js's engine still does not load after the glibc patch (npm ci restores it): ${after}`,
    );
  }
  return `Jazzer.js engine patched to load on this glibc (${MISSING_VERSIONS.join(", ")} made weak)`;
}

interface Section {
  type: number;
  offset: number;
  size: number;
  link: number;
  info: number;
}

/** The patch described above, on a copy of the ELF64 little-endian file. */
export function patchVersionRequirements(original: Buffer): Buffer {
  const elf = Buffer.from(original);
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) {
    throw new Error("not a 64-bit little-endian ELF file");
  }
  const sections = readSections(elf);
  const find = (type: number) => {
    const section = sections.find((candidate) => candidate.type === type);
    if (!section) throw new Error(`no section of type 0x${type.toString(16)}`);
    return section;
  };
  const dynsym = find(SHT_DYNSYM);
  const versym = find(SHT_GNU_VERSYM);
  const verneed = find(SHT_GNU_VERNEED);
  const dynstr = sections[dynsym.link] as Section;
  const name = (offset: number) => {
    const start = dynstr.offset + offset;
    return elf.toString("latin1", start, elf.indexOf(0, start));
  };

  // Verneed entries (vn_cnt at +2, vn_aux at +8, vn_next at +12) and their Vernaux (vna_flags at +4,
  // vna_other, the version's index, at +6, vna_name at +8, vna_next at +12).
  const weakened = new Map<number, string>();
  let need = verneed.offset;
  for (let i = 0; i < verneed.info; i++) {
    let aux = need + elf.readUInt32LE(need + 8);
    for (let j = 0; j < elf.readUInt16LE(need + 2); j++) {
      const version = name(elf.readUInt32LE(aux + 8));
      if (MISSING_VERSIONS.includes(version)) {
        elf.writeUInt16LE(elf.readUInt16LE(aux + 4) | VER_FLG_WEAK, aux + 4);
        weakened.set(elf.readUInt16LE(aux + 6), version);
      }
      aux += elf.readUInt32LE(aux + 12);
    }
    need += elf.readUInt32LE(need + 12);
  }
  if (weakened.size !== MISSING_VERSIONS.length)
    throw new Error("the version requirements are not as expected");

  // Symbols (24 bytes each, st_name first) and their version indexes (2 bytes each, in the same order).
  for (let index = 0; index < dynsym.size / 24; index++) {
    const entry = dynsym.offset + index * 24;
    const symbol = name(elf.readUInt32LE(entry));
    const versionAt = versym.offset + index * 2;
    const version = weakened.get(elf.readUInt16LE(versionAt) & 0x7fff);
    if (version === undefined) continue;
    if (symbol.startsWith(C23_PREFIX)) {
      elf.writeUInt32LE(elf.readUInt32LE(entry) + C23_PREFIX.length, entry);
      elf.writeUInt16LE(VER_NDX_GLOBAL, versionAt);
    } else if (symbol !== "_ZSt21ios_base_library_initv") {
      throw new Error(`${symbol} needs ${version}, which this patch cannot stand in for`);
    }
  }
  return elf;
}

function readSections(elf: Buffer): Section[] {
  const tableOffset = Number(elf.readBigUInt64LE(0x28));
  const entrySize = elf.readUInt16LE(0x3a);
  const count = elf.readUInt16LE(0x3c);
  const sections: Section[] = [];
  for (let i = 0; i < count; i++) {
    const at = tableOffset + i * entrySize;
    sections.push({
      type: elf.readUInt32LE(at + 4),
      offset: Number(elf.readBigUInt64LE(at + 24)),
      size: Number(elf.readBigUInt64LE(at + 32)),
      link: elf.readUInt32LE(at + 40),
      info: elf.readUInt32LE(at + 44),
    });
  }
  return sections;
}
