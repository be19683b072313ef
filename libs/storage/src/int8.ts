/**
 * int8 (bigint) mapping shared by both engines. `pg` returns int8 as a string by default and
 * PGlite as a BigInt or number depending on version; we want one answer everywhere. Stream
 * positions, numeric ids and counts are far below 2^53, so a JS number is the natural type;
 * a value beyond Number.MAX_SAFE_INTEGER throws instead of rounding silently.
 */
export const INT8_OID = 20;
export const INT8_ARRAY_OID = 1016;

export function parseInt8(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) {
    throw new RangeError(`int8 value ${text} is beyond Number.MAX_SAFE_INTEGER and cannot be returned as a JS number; cast it to text in SQL`);
  }
  return value;
}

/** Parses a PostgreSQL int8[] text literal such as {1,2,NULL}. */
export function parseInt8Array(text: string): (number | null)[] {
  const inner = text.slice(1, -1).trim();
  if (inner === '') return [];
  return inner.split(',').map((item) => (item === 'NULL' ? null : parseInt8(item)));
}
