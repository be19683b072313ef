/**
 * Index for "jump to date" (client-api's GET /v1/rooms/{roomId}/timestamp_to_event): a room's
 * timeline events by origin_server_ts, so that the closest event in either direction is the first
 * entry of one index range, instead of reading and sorting every event of the room.
 *
 * Partial: only the events the endpoint may answer with (timeline events, not outliers, not
 * rejected), so the scan never steps over one it must skip and outliers cost nothing. Cost on the
 * append path: one more B-tree insertion per timeline event (three int8 columns, about 40 bytes
 * of index per event with its tuple header and line pointer, plus its WAL); origin_server_ts never
 * changes, so later updates of the row touch the index only when they already could not be HOT
 * (stream_pos, outlier and rejected_reason changes). The query (closest-event.ts)
 * repeats the predicate word for word so that the planner can use the index.
 */
import type { Migration } from '../migrate.js';

export const eventTimestampMigrations: Migration[] = [
  {
    id: 'event_log_ts_0001_room_origin_ts',
    sql: `
CREATE INDEX events_room_origin_ts ON events (room_nid, origin_server_ts, stream_pos)
  WHERE stream_pos IS NOT NULL AND NOT outlier AND rejected_reason IS NULL;
`,
  },
];
