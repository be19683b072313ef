import { invalidParam } from '../errors.js';
import type { GroupKey } from './search-request.js';

/**
 * Where a search continues (the `next_batch` query parameter). A search reads windows of the
 * event log: the newest events strictly before `before` in the searched rooms. `offset` is
 * how many of that window's matches, in the requested order, were already handed out. The
 * window never changes once its top is fixed (new events land above it), so a rank-ordered
 * page is stable. `group` restricts a continuation to one group (a `groups` next_batch).
 */
export interface SearchCursor {
  before: number;
  offset: number;
  group?: { key: GroupKey; value: string };
}

export function encodeSearchCursor(cursor: SearchCursor): string {
  const json = cursor.group ? { b: cursor.before, o: cursor.offset, g: [cursor.group.key, cursor.group.value] } : { b: cursor.before, o: cursor.offset };
  return Buffer.from(JSON.stringify(json)).toString('base64url');
}

export function decodeSearchCursor(token: string): SearchCursor {
  const bad = () => invalidParam('"next_batch" is not a search token from this server');
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (typeof json !== 'object' || json === null) throw bad();
  const { b, o, g } = json as Record<string, unknown>;
  if (!Number.isSafeInteger(b) || (b as number) < 1 || !Number.isSafeInteger(o) || (o as number) < 0) throw bad();
  const cursor: SearchCursor = { before: b as number, offset: o as number };
  if (g !== undefined) {
    if (!Array.isArray(g) || g.length !== 2 || (g[0] !== 'room_id' && g[0] !== 'sender') || typeof g[1] !== 'string') throw bad();
    cursor.group = { key: g[0], value: g[1] };
  }
  return cursor;
}
