/** Reverse DNS for the greeting (doDnsReverseLookup), bounded in time whatever source answers. */

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
