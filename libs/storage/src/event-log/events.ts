import type { Queryable } from '../db.js';
import { loadSnapshot, type StateTriple } from './state-snapshots.js';

/** Events (tables events, event_prev_edges, event_auth_edges): reads. persistence writes them (append.ts). */
export interface StoredEvent {
  eventNid: number;
  eventId: string;
  roomId: string;
  type: string;
  stateKey: string | null;
  sender: string;
  depth: number;
  originServerTs: number;
  /** Global stream position; null for outliers, rejected and soft-failed events. */
  streamPos: number | null;
  outlier: boolean;
  softFailed: boolean;
  rejectedReason: string | null;
  stateBeforeNid: number | null;
  stateAfterNid: number | null;
  /** The redaction that redacted this event; `json` is then the redacted form. */
  redactedBy: string | null;
  /** The event JSON as stored (the PDU). */
  json: Record<string, any>;
}

const SELECT_EVENTS = `
  SELECT e.event_nid, e.event_id, r.room_id, t.event_type, k.state_key, e.sender, e.depth, e.origin_server_ts,
         e.stream_pos, e.outlier, e.soft_failed, e.rejected_reason, e.state_before_nid, e.state_after_nid,
         e.redacted_by, e.json
  FROM events e
  JOIN rooms r ON r.room_nid = e.room_nid
  JOIN event_types t ON t.type_nid = e.type_nid
  LEFT JOIN event_state_keys k ON k.state_key_nid = e.state_key_nid`;

interface EventRow {
  event_nid: number;
  event_id: string;
  room_id: string;
  event_type: string;
  state_key: string | null;
  sender: string;
  depth: number;
  origin_server_ts: number;
  stream_pos: number | null;
  outlier: boolean;
  soft_failed: boolean;
  rejected_reason: string | null;
  state_before_nid: number | null;
  state_after_nid: number | null;
  redacted_by: string | null;
  json: string;
}

function toStored(r: EventRow): StoredEvent {
  return {
    eventNid: r.event_nid,
    eventId: r.event_id,
    roomId: r.room_id,
    type: r.event_type,
    stateKey: r.state_key,
    sender: r.sender,
    depth: r.depth,
    originServerTs: r.origin_server_ts,
    streamPos: r.stream_pos,
    outlier: r.outlier,
    softFailed: r.soft_failed,
    rejectedReason: r.rejected_reason,
    stateBeforeNid: r.state_before_nid,
    stateAfterNid: r.state_after_nid,
    redactedBy: r.redacted_by,
    json: JSON.parse(r.json),
  };
}

/** Events by id (any status: outliers, rejected and soft-failed included). Unknown ids are absent. */
export async function getEvents(db: Queryable, eventIds: readonly string[]): Promise<Map<string, StoredEvent>> {
  if (eventIds.length === 0) return new Map();
  const { rows } = await db.query<EventRow>(`${SELECT_EVENTS} WHERE e.event_id = ANY($1::text[])`, [[...new Set(eventIds)]]);
  return new Map(rows.map((r) => [r.event_id, toStored(r)]));
}

export async function getEvent(db: Queryable, eventId: string): Promise<StoredEvent | null> {
  return (await getEvents(db, [eventId])).get(eventId) ?? null;
}

/** Which of these event ids are not stored (for fetching missing prev/auth events). */
export async function getMissingEventIds(db: Queryable, eventIds: readonly string[]): Promise<string[]> {
  if (eventIds.length === 0) return [];
  const { rows } = await db.query<{ event_id: string }>('SELECT event_id FROM events WHERE event_id = ANY($1::text[])', [[...new Set(eventIds)]]);
  const known = new Set(rows.map((r) => r.event_id));
  return [...new Set(eventIds)].filter((id) => !known.has(id));
}

/**
 * The stream after a position, in position order: what a consumer reads from its cursor when
 * it missed notifications (or on start). Only timeline events (accepted, not outliers).
 * `upTo` bounds the read (inclusive), e.g. a sync's next_batch.
 */
export async function getEventsSince(db: Queryable, afterPosition: number, limit: number, upTo?: number): Promise<StoredEvent[]> {
  const { rows } = await db.query<EventRow>(
    `${SELECT_EVENTS} WHERE e.stream_pos > $1 AND ($3::bigint IS NULL OR e.stream_pos <= $3) ORDER BY e.stream_pos LIMIT $2`,
    [afterPosition, limit, upTo ?? null],
  );
  return rows.map(toStored);
}

export interface TimelineQuery {
  /** 'b': newest first, positions < `from` (or the latest when absent); 'f': oldest first, positions > `from`. */
  direction: 'f' | 'b';
  from?: number;
  /** Stop (inclusive for 'f' upper bound, exclusive lower bound for 'b'). */
  to?: number;
  limit: number;
}

/** A room's timeline in stream order (sync). */
export async function getRoomTimeline(db: Queryable, roomId: string, q: TimelineQuery): Promise<StoredEvent[]> {
  const forward = q.direction === 'f';
  const { rows } = await db.query<EventRow>(
    `${SELECT_EVENTS}
     WHERE r.room_id = $1 AND e.stream_pos IS NOT NULL
       AND ${forward ? '($2::bigint IS NULL OR e.stream_pos > $2) AND ($3::bigint IS NULL OR e.stream_pos <= $3)'
                     : '($2::bigint IS NULL OR e.stream_pos < $2) AND ($3::bigint IS NULL OR e.stream_pos > $3)'}
     ORDER BY e.stream_pos ${forward ? 'ASC' : 'DESC'} LIMIT $4`,
    [roomId, q.from ?? null, q.to ?? null, q.limit],
  );
  return rows.map(toStored);
}

/** A topological position: (depth, stream position), the order /messages pages in. */
export interface TopologicalToken {
  depth: number;
  streamPos: number;
}

/** A room's timeline in topological order (/messages): events strictly after/before `from`. */
export async function getRoomMessagesTopological(
  db: Queryable,
  roomId: string,
  q: { direction: 'f' | 'b'; from?: TopologicalToken; limit: number },
): Promise<StoredEvent[]> {
  const forward = q.direction === 'f';
  const cmp = forward ? '>' : '<';
  const { rows } = await db.query<EventRow>(
    `${SELECT_EVENTS}
     WHERE r.room_id = $1 AND e.stream_pos IS NOT NULL
       AND ($2::bigint IS NULL OR (e.depth, e.stream_pos) ${cmp} ($2::bigint, $3::bigint))
     ORDER BY e.depth ${forward ? 'ASC' : 'DESC'}, e.stream_pos ${forward ? 'ASC' : 'DESC'} LIMIT $4`,
    [roomId, q.from?.depth ?? null, q.from?.streamPos ?? null, q.limit],
  );
  return rows.map(toStored);
}

/** The state before an event (null when the event is unknown or an outlier). */
export async function getStateBeforeEvent(db: Queryable, eventId: string): Promise<StateTriple[] | null> {
  const { rows } = await db.query<{ state_before_nid: number | null; outlier: boolean }>(
    'SELECT state_before_nid, outlier FROM events WHERE event_id = $1',
    [eventId],
  );
  if (rows.length === 0 || rows[0]!.outlier) return null;
  return loadSnapshot(db, rows[0]!.state_before_nid);
}

/** The state after an event: the state before it plus itself if it is an accepted state event. */
export async function getStateAfterEvent(db: Queryable, eventId: string): Promise<StateTriple[] | null> {
  const { rows } = await db.query<{ state_after_nid: number | null; outlier: boolean }>(
    'SELECT state_after_nid, outlier FROM events WHERE event_id = $1',
    [eventId],
  );
  if (rows.length === 0 || rows[0]!.outlier) return null;
  return loadSnapshot(db, rows[0]!.state_after_nid);
}

/** Events that cite `eventId` as a prev_event (children in the DAG). */
export async function getChildEventIds(db: Queryable, eventId: string): Promise<string[]> {
  const { rows } = await db.query<{ event_id: string }>(
    'SELECT e.event_id FROM event_prev_edges p JOIN events e ON e.event_nid = p.event_nid WHERE p.prev_event_id = $1',
    [eventId],
  );
  return rows.map((r) => r.event_id);
}
