/**
 * Whether a message id can travel as a header value and a NATS object name (the HTTP and NATS sinks):
 * 1 to 256 visible ASCII characters, nothing that could end or fold a header.
 */
export function isHeaderSafeId(id: string): boolean {
  return /^[\x21-\x7e]{1,256}$/.test(id);
}
