/**
 * Indexes for event relationships (spec "Forming relationships between events"): which timeline
 * events relate to a parent through content["m.relates_to"] (rel_type, event_id).
 *
 * Expression indexes over the stored event JSON rather than a relations table written by the
 * append: an index is a function of what is stored, so it follows every change of the JSON by
 * itself (a redaction strips m.relates_to and drops the child from its parent's relations, as
 * Synapse deletes its event_relations row), needs no backfill (CREATE INDEX reads the existing
 * rows) and no change to the append. The cheap strpos() predicate keeps the append from parsing
 * JSON for the events that carry no relation; only those that do are parsed, once per index.
 *
 * Queries must repeat the predicate and expressions exactly (libs/storage/src/event-log/relations.ts)
 * for the planner to use the indexes.
 */
import type { Migration } from '../migrate.js';

export const eventRelationsMigrations: Migration[] = [
  {
    id: 'event_log_relations_0001_indexes',
    sql: `
-- Children of a parent, in stream order: /relations and the bundled aggregations.
CREATE INDEX events_relations_parent ON events (room_nid, (json::jsonb -> 'content' -> 'm.relates_to' ->> 'event_id'), stream_pos)
  WHERE stream_pos IS NOT NULL AND strpos(json, '"m.relates_to"') > 0;
-- Thread replies of a room, in stream order: /threads orders the roots by their latest reply.
CREATE INDEX events_relations_thread_replies ON events (room_nid, stream_pos)
  WHERE stream_pos IS NOT NULL AND strpos(json, '"m.relates_to"') > 0
    AND (json::jsonb -> 'content' -> 'm.relates_to' ->> 'rel_type') = 'm.thread';
`,
  },
];
