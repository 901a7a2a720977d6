/** Reverse DNS for the greeting (doDnsReverseLookup), bounded in time whatever source answers. */
import { Resolver } from "node:dns/promises";

/**
 * The name `lookup` gives for `ip` within `timeoutMs`; the address itself when the lookup fails, finds
 * nothing, answers something that is not a name, or is too slow. Never rejects.
 */
export async function boundedLookup(
  lookup: (ip: string) => Promise<string>,
  ip: string,
  timeoutMs: number,
): Promise<string> {
  if (ip === "") return ip;
  let timer: NodeJS.Timeout | undefined;
  const fallback = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(ip), timeoutMs);
  });
  const named = Promise.resolve()
    .then(() => lookup(ip))
    .then(
      (name) => (typeof name === "string" && name !== "" ? name : ip),
      () => ip,
    );
  try {
    return await Promise.race([named, fallback]);
  } finally {
    clearTimeout(timer);
  }
}

/** The client's and the local host names of a context, looked up by `lookup`, each bounded by `timeoutMs`. */
export async function lookupHostNames(
  server: { remoteIp: string; localIp: string; remoteHost: string; localHost: string },
  lookup: (ip: string) => Promise<string>,
  timeoutMs: number,
): Promise<void> {
  [server.remoteHost, server.localHost] = await Promise.all([
    boundedLookup(lookup, server.remoteIp, timeoutMs),
    boundedLookup(lookup, server.localIp, timeoutMs),
  ]);
}

/** Reverse DNS (PTR) through a resolver of its own, made at the first lookup, whose queries stop() cancels. */
export class PtrResolver {
  private resolver: Resolver | null = null;

  constructor(private readonly timeoutMs: number) {}

  /** The first name of `ip`, or `ip` itself when there is none. */
  async lookup(ip: string): Promise<string> {
    this.resolver ??= new Resolver({ timeout: this.timeoutMs, tries: 1 });
    const names = await this.resolver.reverse(ip);
    return names[0] ?? ip;
  }

  /** Cancels the queries in flight; the next lookup makes a new resolver. */
  cancel(): void {
    this.resolver?.cancel();
    this.resolver = null;
  }
}
