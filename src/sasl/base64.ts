/**
 * Strict base64 (RFC 4648 section 4) for SASL exchanges. RFC 4954 section 4 requires the server to
 * reject a client response that is not valid base64; Node's Buffer.from(text, "base64") skips unknown
 * characters, accepts missing padding and the URL alphabet, so it only decodes here after validation.
 */

/** Code points allowed in the body of a base64 string: A-Z a-z 0-9 + /. */
function isBase64Char(code: number): boolean {
  return (
    (code >= 0x41 && code <= 0x5a) || // A-Z
    (code >= 0x61 && code <= 0x7a) || // a-z
    (code >= 0x30 && code <= 0x39) || // 0-9
    code === 0x2b || // +
    code === 0x2f // /
  );
}

/**
 * Decodes `text` when it is canonical base64: only the standard alphabet, a length that is a multiple
 * of 4, "=" padding (at most two) only at the end, and zero bits in the unused part of the last
 * quantum (so that every byte string has exactly one accepted encoding). "" decodes to an empty
 * buffer. Returns undefined for anything else.
 */
export function decodeBase64Strict(text: string): Buffer | undefined {
  const length = text.length;
  if (length % 4 !== 0) return undefined;
  let padding = 0;
  if (length > 0 && text.charCodeAt(length - 1) === 0x3d) {
    padding = text.charCodeAt(length - 2) === 0x3d ? 2 : 1;
  }
  const body = length - padding;
  for (let i = 0; i < body; i++) {
    if (!isBase64Char(text.charCodeAt(i))) return undefined;
  }
  const decoded = Buffer.from(text, "base64");
  // Non-zero bits after the last byte ("QR==" instead of "QQ==") would decode to the same bytes.
  if (decoded.toString("base64") !== text) return undefined;
  return decoded;
}

/** Standard base64 with padding, of a string's UTF-8 bytes. */
export function encodeBase64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}
