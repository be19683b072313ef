import type { Queryable } from '../db.js';

/**
 * Event relationships (spec "Forming relationships between events"): timeline events whose
 * content["m.relates_to"] names a parent (event_id) and a rel_type. Read through the expression
 * indexes of relations-migrations.ts: the predicate and expressions below repeat theirs exactly,
 * or the planner cannot use them.
 */
const HAS_RELATION = `e.stream_pos IS NOT NULL AND strpos(e.json, '"m.relates_to"') > 0`;
const PARENT = `(e.json::jsonb -> 'content' -> 'm.relates_to' ->> 'event_id')`;
const REL_TYPE = `(e.json::jsonb -> 'content' -> 'm.relates_to' ->> 'rel_type')`;
/** A relation needs both keys as strings (Synapse ignores the others). */
const WELL_FORMED = `jsonb_typeof(e.json::jsonb -> 'content' -> 'm.relates_to' -> 'rel_type') = 'string'`;

export interface RelatedEventRef {
  eventId: string;
  streamPos: number;
}

export interface RelationsQuery {
  /** Only children with this rel_type. */
  relType?: string;
  /** Only children of this event type. */
  eventType?: string;
  /** 1: direct children only; n: children of children too, up to n relations away. */
  maxDepth: number;
  /** 'b': newest first, positions < `from`, > `to`; 'f': oldest first, positions > `from`, <= `to` (as getRoomTimeline). */
  direction: 'b' | 'f';
  from?: number;
  to?: number;
  limit: number;
}

/** The timeline events of a room that relate to `parentId` (or to its children, with maxDepth > 1), in stream order. */
export async function getRelatedEvents(db: Queryable, roomId: string, parentId: string, q: RelationsQuery): Promise<RelatedEventRef[]> {
  const forward = q.direction === 'f';
  // $1-$5: the page (bounds, filters, limit); $6, $7: which events.
  const page = `${forward
    ? '($1::bigint IS NULL OR e.stream_pos > $1) AND ($2::bigint IS NULL OR e.stream_pos <= $2)'
    : '($1::bigint IS NULL OR e.stream_pos < $1) AND ($2::bigint IS NULL OR e.stream_pos > $2)'}
    AND ${WELL_FORMED} AND ($3::text IS NULL OR ${REL_TYPE} = $3)
    AND ($4::text IS NULL OR e.type_nid = (SELECT type_nid FROM event_types WHERE event_type = $4))
    ORDER BY e.stream_pos ${forward ? 'ASC' : 'DESC'} LIMIT $5`;
  const pageParams = [q.from ?? null, q.to ?? null, q.relType ?? null, q.eventType ?? null, q.limit];
  const { rows } = q.maxDepth <= 1
    // Direct children: one range of the parent index, already in stream order.
    ? await db.query<{ event_id: string; stream_pos: number }>(
      `SELECT e.event_id, e.stream_pos FROM events e
       WHERE e.room_nid = (SELECT room_nid FROM rooms WHERE room_id = $6) AND ${HAS_RELATION} AND ${PARENT} = $7 AND ${page}`,
      [...pageParams, roomId, parentId],
    )
    // Children of children: one lookup of the parent index per level (a recursive query lets the
    // planner scan every relation of the room instead), bounded by the depth so that a relation
    // cycle cannot recurse forever; then the page among them.
    : await db.query<{ event_id: string; stream_pos: number }>(
      `SELECT e.event_id, e.stream_pos FROM events e WHERE e.event_nid = ANY($6::bigint[]) AND ${page}`,
      [...pageParams, await getDescendantNids(db, roomId, parentId, q.maxDepth)],
    );
  return rows.map((r) => ({ eventId: r.event_id, streamPos: r.stream_pos }));
}

/** Event nids of the timeline events up to `maxDepth` relations below `parentId` in its room. */
async function getDescendantNids(db: Queryable, roomId: string, parentId: string, maxDepth: number): Promise<number[]> {
  const { rows: room } = await db.query<{ room_nid: number }>('SELECT room_nid FROM rooms WHERE room_id = $1', [roomId]);
  if (room.length === 0) return [];
  const found = new Set<number>();
  let level = [parentId];
  for (let depth = 1; depth <= maxDepth && level.length > 0; depth++) {
    const { rows } = await db.query<{ event_nid: number; event_id: string }>(
      `SELECT e.event_nid, e.event_id FROM events e WHERE e.room_nid = $1 AND ${HAS_RELATION} AND ${PARENT} = ANY($2::text[])`,
      [room[0]!.room_nid, level],
    );
    level = rows.filter((r) => !found.has(r.event_nid)).map((r) => r.event_id);
    for (const r of rows) found.add(r.event_nid);
  }
  return [...found];
}

export interface ThreadRootRef {
  rootId: string;
  /** Stream position of the thread's latest reply: the order of /threads. */
  latestPos: number;
}

/**
 * The thread roots of a room (timeline events of the room with m.thread children), latest
 * reply first, whose latest reply is at or before `atOrBefore`. With `participant`: only the
 * threads that user started or replied in.
 */
export async function getThreadRoots(
  db: Queryable,
  roomId: string,
  q: { atOrBefore?: number; participant?: string; limit: number },
): Promise<ThreadRootRef[]> {
  const { rows } = await db.query<{ root_id: string; latest: number }>(
    `WITH room AS (SELECT room_nid FROM rooms WHERE room_id = $1),
     threads AS (
       SELECT ${PARENT} AS root_id, max(e.stream_pos) AS latest, bool_or(e.sender = $3) AS replied
       FROM room JOIN events e ON e.room_nid = room.room_nid
       WHERE ${HAS_RELATION} AND ${REL_TYPE} = 'm.thread'
       GROUP BY 1
     )
     SELECT t.root_id, t.latest FROM threads t CROSS JOIN room
     JOIN events root ON root.event_id = t.root_id AND root.room_nid = room.room_nid AND root.stream_pos IS NOT NULL
     WHERE ($2::bigint IS NULL OR t.latest <= $2) AND ($3::text IS NULL OR t.replied OR root.sender = $3)
     ORDER BY t.latest DESC LIMIT $4`,
    [roomId, q.atOrBefore ?? null, q.participant ?? null, q.limit],
  );
  return rows.map((r) => ({ rootId: r.root_id, latestPos: r.latest }));
}

export interface ThreadSummary {
  /** Number of m.thread children. */
  count: number;
  latestEventId: string;
  /** The user sent one of the replies (the root's sender is the caller's to check). */
  userReplied: boolean;
}

/** The m.thread aggregation of each of these roots that has replies. */
export async function getThreadSummaries(db: Queryable, roomId: string, rootIds: readonly string[], userId: string): Promise<Map<string, ThreadSummary>> {
  if (rootIds.length === 0) return new Map();
  const { rows } = await db.query<{ root_id: string; count: number; latest_id: string; replied: boolean }>(
    `SELECT ${PARENT} AS root_id, count(*)::int AS count, (array_agg(e.event_id ORDER BY e.stream_pos DESC))[1] AS latest_id,
            bool_or(e.sender = $3) AS replied
     FROM events e
     WHERE e.room_nid = (SELECT room_nid FROM rooms WHERE room_id = $1) AND ${HAS_RELATION} AND ${PARENT} = ANY($2::text[])
       AND ${REL_TYPE} = 'm.thread'
     GROUP BY 1`,
    [roomId, [...new Set(rootIds)], userId],
  );
  return new Map(rows.map((r) => [r.root_id, { count: Number(r.count), latestEventId: r.latest_id, userReplied: r.replied }]));
}

/** Every timeline child of these parents with this rel_type, in stream order (for bundled aggregations). */
export async function getChildrenOfType(db: Queryable, roomId: string, parentIds: readonly string[], relType: string): Promise<Array<{ parentId: string; eventId: string }>> {
  if (parentIds.length === 0) return [];
  const { rows } = await db.query<{ parent_id: string; event_id: string }>(
    `SELECT ${PARENT} AS parent_id, e.event_id FROM events e
     WHERE e.room_nid = (SELECT room_nid FROM rooms WHERE room_id = $1) AND ${HAS_RELATION} AND ${PARENT} = ANY($2::text[])
       AND ${REL_TYPE} = $3
     ORDER BY e.stream_pos`,
    [roomId, [...new Set(parentIds)], relType],
  );
  return rows.map((r) => ({ parentId: r.parent_id, eventId: r.event_id }));
}
