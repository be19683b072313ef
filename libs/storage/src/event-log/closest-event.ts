import type { Queryable } from '../db.js';

/**
 * The room's timeline event closest to a time in one direction, for timestamp_to_event (the
 * client API's GET /v1/rooms/{roomId}/timestamp_to_event and the federation's
 * GET /v1/timestamp_to_event/{roomId}).
 *
 * It reads the partial index events_room_origin_ts (room_nid, origin_server_ts, stream_pos) of
 * the event log (libs/storage event-log migrations), which holds exactly the events it may
 * answer with. The room's nid is taken once by a sub-select, so that it is a constant for the
 * planner: the index then yields the events already in (origin_server_ts, stream_pos) order and
 * the LIMIT 1 stops at the first entry, with no sort of the room's events. The predicate repeats
 * the index's own, word for word, for the planner to use it.
 */
export function closestEventSql(dir: 'f' | 'b'): string {
  const forward = dir === 'f';
  return `SELECT e.event_id, e.origin_server_ts FROM events e
    WHERE e.room_nid = (SELECT r.room_nid FROM rooms r WHERE r.room_id = $1)
      AND e.stream_pos IS NOT NULL AND NOT e.outlier AND e.rejected_reason IS NULL
      AND ${forward ? 'e.origin_server_ts >= $2' : 'e.origin_server_ts <= $2'}
    ORDER BY e.origin_server_ts ${forward ? 'ASC' : 'DESC'}, e.stream_pos ${forward ? 'ASC' : 'DESC'}
    LIMIT 1`;
}

export async function findClosestTimelineEvent(db: Queryable, roomId: string, ts: number, dir: 'f' | 'b'): Promise<{ eventId: string; originServerTs: number } | undefined> {
  const { rows } = await db.query<{ event_id: string; origin_server_ts: number | string }>(closestEventSql(dir), [roomId, ts]);
  const found = rows[0];
  return found ? { eventId: found.event_id, originServerTs: Number(found.origin_server_ts) } : undefined;
}
