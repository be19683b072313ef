/**
 * Base64 as Matrix uses it (appendices, "Unpadded Base64"): encoded without `=` padding,
 * standard alphabet for keys, signatures and hashes, URL-safe alphabet for event ids (room
 * v4+) and v12 room ids. Decoding accepts either alphabet, padded or not, as the spec asks.
 */

export class Base64Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Base64Error';
  }
}

export function encodeUnpaddedBase64(bytes: Uint8Array): string {
  const s = toBuffer(bytes).toString('base64');
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 0x3d /* = */) end--;
  return s.slice(0, end);
}

export function encodeUnpaddedBase64Url(bytes: Uint8Array): string {
  return toBuffer(bytes).toString('base64url'); // Node writes base64url unpadded
}

const STANDARD_ONLY = /[+/]/;
const URL_SAFE_ONLY = /[-_]/;
const BODY = /^[A-Za-z0-9+/_-]*$/;

/** Decodes standard or URL-safe base64, with or without padding; throws Base64Error on bad input. */
export function decodeBase64(s: string): Buffer {
  if (typeof s !== 'string') throw new Base64Error(`base64: expected a string, got ${typeof s}`);
  let body = s;
  let padding = 0;
  while (body.endsWith('=')) {
    body = body.slice(0, -1);
    padding++;
  }
  if (!BODY.test(body)) {
    const bad = [...body].find((c) => !/[A-Za-z0-9+/_-]/.test(c));
    throw new Base64Error(`base64: invalid character ${JSON.stringify(bad)} in ${JSON.stringify(abbreviate(s))}`);
  }
  if (STANDARD_ONLY.test(body) && URL_SAFE_ONLY.test(body)) {
    throw new Base64Error(`base64: ${JSON.stringify(abbreviate(s))} mixes the standard (+/) and URL-safe (-_) alphabets`);
  }
  if (body.length % 4 === 1) {
    throw new Base64Error(`base64: length ${body.length} (without padding) is not a valid base64 length`);
  }
  if (padding > 0 && (body.length + padding) % 4 !== 0) {
    throw new Base64Error(`base64: ${padding} padding character(s) do not match a body of length ${body.length}`);
  }
  // Node's base64 decoder reads both alphabets.
  return Buffer.from(body, 'base64');
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function abbreviate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}
