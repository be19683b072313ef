import { invalidParam } from '../errors.js';
import { decodeSyncToken } from '../sync-token.js';

/**
 * Pagination tokens of /messages and /context (prev_batch of /sync too): `t<position>`, a
 * point in the room's stream order between the events at or before `position` and those after.
 * Positions below 0 are those of backfilled history (stored older than everything, see
 * libs/storage/src/event-log/backfill.ts): `t-42`. A /sync `next_batch` (or `since`) is
 * accepted as well: its events position is the same kind of point.
 */
export function encodePaginationToken(position: number): string {
  return `t${position}`;
}

export function decodePaginationToken(token: string, parameter: string): number {
  const match = /^t(-?\d{1,15})$/.exec(token);
  if (match) return Number(match[1]);
  const sync = decodeSyncToken(token);
  if (sync) return sync.events;
  throw invalidParam(`"${parameter}" is not a pagination token from this server`);
}
