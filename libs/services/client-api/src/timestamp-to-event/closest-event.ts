/**
 * The query of GET /v1/rooms/{roomId}/timestamp_to_event: the room's timeline event closest to a
 * time in one direction ($1 room id, $2 timestamp in ms).
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
