/**
 * Canonical JSON as the Matrix spec defines it (appendices, "Canonical JSON"): object keys
 * sorted by Unicode code point, no insignificant whitespace, UTF-8, strings escaped only where
 * JSON requires it (`\"`, `\\`, the short escapes, `\u00XX` in lowercase hex for other
 * control characters), numbers only as integers in [-(2^53)+1, 2^53-1].
 *
 * Anything that has no canonical form (floats, NaN, out-of-range numbers, undefined,
 * functions, lone surrogates, class instances) is refused with a CanonicalJsonError whose
 * message names the path of the bad value, such as `content.foo[2]`.
 */

export class CanonicalJsonError extends Error {
  /** Where the bad value sits, e.g. `content.foo[2]`; empty for the top-level value. */
  readonly path: string;

  constructor(readonly problem: string, path: string) {
    super(`canonical JSON: ${path === '' ? 'the value' : `the value at ${path}`} ${problem}`);
    this.name = 'CanonicalJsonError';
    this.path = path;
  }
}

/** Nesting deeper than this is refused; it also turns a reference cycle into a clear error. */
const MAX_DEPTH = 512;

/**
 * Thrown inside the encoder; each level on the way out adds its path segment, so the happy
 * path pays nothing for error paths.
 */
class PathedProblem {
  readonly segments: (string | number)[] = [];
  constructor(readonly problem: string) {}
}

export function canonicalJson(value: unknown): string {
  try {
    return encodeValue(value, 0);
  } catch (e) {
    if (e instanceof PathedProblem) throw new CanonicalJsonError(e.problem, formatPath(e.segments));
    throw e;
  }
}

export function canonicalJsonBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}

function encodeValue(value: unknown, depth: number): string {
  switch (typeof value) {
    case 'string':
      return encodeString(value);
    case 'number':
      return encodeNumber(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      if (depth >= MAX_DEPTH) throw new PathedProblem(`is nested more than ${MAX_DEPTH} levels deep (or is a reference cycle)`);
      if (Array.isArray(value)) return encodeArray(value, depth + 1);
      return encodeObject(value as object, depth + 1);
    case 'undefined':
      throw new PathedProblem('is undefined, which JSON cannot represent');
    case 'bigint':
      throw new PathedProblem('is a bigint; use a number in [-(2^53)+1, 2^53-1]');
    default:
      throw new PathedProblem(`is a ${typeof value}, which JSON cannot represent`);
  }
}

function encodeNumber(n: number): string {
  if (Number.isSafeInteger(n)) return n === 0 ? '0' : String(n); // -0 is written 0
  if (Number.isNaN(n)) throw new PathedProblem('is NaN; canonical JSON allows only integers');
  if (!Number.isFinite(n)) throw new PathedProblem(`is ${n}; canonical JSON allows only integers`);
  if (!Number.isInteger(n)) throw new PathedProblem(`is a float (${n}); canonical JSON allows only integers`);
  throw new PathedProblem(`is ${n}, outside the allowed integer range [-(2^53)+1, 2^53-1]`);
}

// String.prototype.isWellFormed is in Node 20+; the regex is the fallback for older engines.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const isWellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (s) => !LONE_SURROGATE.test(s);

function encodeString(s: string): string {
  // JSON.stringify escapes exactly what the spec's grammar escapes (", \, \b \f \n \r \t,
  // other C0 controls as lowercase \u00xx) and writes everything else literally, except lone
  // surrogates, which it writes as \udxxx. Those have no UTF-8 form, so they are refused.
  if (!isWellFormed(s)) throw new PathedProblem('is a string holding a lone UTF-16 surrogate, which has no UTF-8 form');
  return JSON.stringify(s);
}

function encodeArray(items: unknown[], depth: number): string {
  let out = '[';
  for (let i = 0; i < items.length; i++) {
    if (i > 0) out += ',';
    try {
      out += encodeValue(items[i], depth);
    } catch (e) {
      if (e instanceof PathedProblem) e.segments.push(i);
      throw e;
    }
  }
  return out + ']';
}

function encodeObject(obj: object, depth: number): string {
  const proto = Object.getPrototypeOf(obj);
  if (proto !== Object.prototype && proto !== null) {
    const name = (obj as { constructor?: { name?: string } }).constructor?.name ?? 'unknown';
    throw new PathedProblem(`is a ${name} instance; only plain objects, arrays, strings, integers, booleans and null are JSON`);
  }
  const keys = sortKeys(Object.keys(obj));
  const record = obj as Record<string, unknown>;
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (i > 0) out += ',';
    try {
      if (!isWellFormed(key)) throw new PathedProblem('has a key holding a lone UTF-16 surrogate, which has no UTF-8 form');
      out += JSON.stringify(key) + ':' + encodeValue(record[key], depth);
    } catch (e) {
      if (e instanceof PathedProblem) e.segments.push(key);
      throw e;
    }
  }
  return out + '}';
}

/**
 * Sorts by Unicode code point. The default sort compares UTF-16 code units, which agrees with
 * code point order except when a surrogate (astral character) meets U+E000..U+FFFF; only keys
 * holding surrogates take the slower comparator.
 */
export function sortKeys(keys: string[]): string[] {
  keys.sort();
  for (const k of keys) {
    if (HAS_SURROGATE.test(k)) return keys.sort(compareCodePoints);
  }
  return keys;
}

const HAS_SURROGATE = /[\uD800-\uDFFF]/;

export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xSurrogate = x >= 0xd800 && x <= 0xdfff;
    const ySurrogate = y >= 0xd800 && y <= 0xdfff;
    // A surrogate stands for a code point >= U+10000, above any BMP code unit.
    if (xSurrogate && !ySurrogate && y >= 0xe000) return 1;
    if (ySurrogate && !xSurrogate && x >= 0xe000) return -1;
    return x - y;
  }
  return a.length - b.length;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function formatPath(segmentsInnerFirst: (string | number)[]): string {
  let out = '';
  for (let i = segmentsInnerFirst.length - 1; i >= 0; i--) {
    const s = segmentsInnerFirst[i]!;
    if (typeof s === 'number') out += `[${s}]`;
    else if (IDENTIFIER.test(s)) out += out === '' ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}
