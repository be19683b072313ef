import type { Queryable } from '../db.js';
import { getEvents, type StoredEvent } from './events.js';

/**
 * Reads the Client-Server API needs beyond the pipeline's own (events.ts, current-state.ts):
 * the latest stream position, which rooms moved in a range, a room's state at a stream
 * position, member counts and membership history. Read-only; persistence stays the only writer.
 */

/** The last committed stream position (positions are allocated in commit order). */
export async function getCurrentStreamPosition(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ position: number }>('SELECT position FROM stream_counter WHERE id = 1');
  return rows[0]?.position ?? 0;
}

/** Of these rooms, those with timeline events in (after, upTo]. */
export async function getRoomsWithEventsBetween(db: Queryable, roomIds: readonly string[], after: number, upTo: number): Promise<string[]> {
  if (roomIds.length === 0 || upTo <= after) return [];
  const { rows } = await db.query<{ room_id: string }>(
    `SELECT r.room_id FROM rooms r
     WHERE r.room_id = ANY($1::text[])
       AND EXISTS (SELECT 1 FROM events e WHERE e.room_nid = r.room_nid AND e.stream_pos > $2 AND e.stream_pos <= $3)`,
    [[...roomIds], after, upTo],
  );
  return rows.map((r) => r.room_id);
}

/**
 * The last timeline event of a room at or before a stream position: the state after it is
 * the room's state at that position. Null when the room had no event yet.
 */
export async function getLastRoomEventAtOrBefore(db: Queryable, roomId: string, position: number): Promise<StoredEvent | null> {
  const { rows } = await db.query<{ event_id: string }>(
    `SELECT e.event_id FROM events e JOIN rooms r ON r.room_nid = e.room_nid
     WHERE r.room_id = $1 AND e.stream_pos IS NOT NULL AND e.stream_pos <= $2
     ORDER BY e.stream_pos DESC LIMIT 1`,
    [roomId, position],
  );
  if (rows.length === 0) return null;
  return (await getEvents(db, [rows[0]!.event_id])).get(rows[0]!.event_id) ?? null;
}

/** Counts of a room's members by membership now (join, invite, leave, ban, knock). */
export async function getRoomMemberCounts(db: Queryable, roomId: string): Promise<Record<string, number>> {
  const { rows } = await db.query<{ membership: string; n: number }>(
    `SELECT m.membership, COUNT(*) AS n FROM room_memberships m JOIN rooms r ON r.room_nid = m.room_nid
     WHERE r.room_id = $1 GROUP BY m.membership`,
    [roomId],
  );
  return Object.fromEntries(rows.map((r) => [r.membership, Number(r.n)]));
}

/** A user's membership in one room now (null when they never had one). */
export async function getUserMembershipInRoom(db: Queryable, roomId: string, userId: string): Promise<{ membership: string; eventId: string; streamPos: number } | null> {
  const { rows } = await db.query<{ membership: string; event_id: string; stream_pos: number }>(
    `SELECT m.membership, e.event_id, m.stream_pos FROM room_memberships m
     JOIN rooms r ON r.room_nid = m.room_nid JOIN events e ON e.event_nid = m.event_nid
     WHERE r.room_id = $1 AND m.user_id = $2`,
    [roomId, userId],
  );
  const r = rows[0];
  return r ? { membership: r.membership, eventId: r.event_id, streamPos: r.stream_pos } : null;
}

/**
 * The stream positions of a user's own membership events in a room, with the membership each
 * set, oldest first (history visibility: "joined at any point after the event").
 */
export async function getUserMembershipHistory(db: Queryable, roomId: string, userId: string): Promise<Array<{ streamPos: number; membership: string }>> {
  const { rows } = await db.query<{ stream_pos: number; json: string }>(
    `SELECT e.stream_pos, e.json FROM events e
     JOIN rooms r ON r.room_nid = e.room_nid
     JOIN event_types t ON t.type_nid = e.type_nid
     JOIN event_state_keys k ON k.state_key_nid = e.state_key_nid
     WHERE r.room_id = $1 AND t.event_type = 'm.room.member' AND k.state_key = $2 AND e.stream_pos IS NOT NULL
     ORDER BY e.stream_pos`,
    [roomId, userId],
  );
  return rows.map((r) => ({ streamPos: r.stream_pos, membership: String((JSON.parse(r.json) as { content?: { membership?: unknown } }).content?.membership) }));
}

/** Users joined to at least one room together with `userId` (presence, device lists). */
export async function getUsersSharingRooms(db: Queryable, userId: string): Promise<string[]> {
  const { rows } = await db.query<{ user_id: string }>(
    `SELECT DISTINCT o.user_id FROM room_memberships m
     JOIN room_memberships o ON o.room_nid = m.room_nid AND o.membership = 'join'
     WHERE m.user_id = $1 AND m.membership = 'join'`,
    [userId],
  );
  return rows.map((r) => r.user_id);
}

/** Whether a timeline event with this id is in this room. */
export async function isEventInRoom(db: Queryable, roomId: string, eventId: string): Promise<boolean> {
  const { rows } = await db.query<{ one: number }>(
    `SELECT 1 AS one FROM events e JOIN rooms r ON r.room_nid = e.room_nid WHERE e.event_id = $1 AND r.room_id = $2 AND NOT e.outlier AND e.rejected_reason IS NULL`,
    [eventId, roomId],
  );
  return rows.length > 0;
}

/**
 * Client transaction ids of events sent by one device: event id -> txn id, for
 * unsigned.transaction_id in what that device receives.
 */
export async function getClientTxnIds(db: Queryable, userId: string, deviceId: string, eventIds: readonly string[]): Promise<Map<string, string>> {
  if (eventIds.length === 0) return new Map();
  const { rows } = await db.query<{ event_id: string; txn_id: string }>(
    'SELECT event_id, txn_id FROM client_txns WHERE user_id = $1 AND device_id = $2 AND event_id = ANY($3::text[])',
    [userId, deviceId, [...eventIds]],
  );
  return new Map(rows.map((r) => [r.event_id, r.txn_id]));
}

/** Counts a room's timeline events after a position of some types, not sent by `exceptSender`. */
export async function countRoomEventsAfter(db: Queryable, roomId: string, afterPos: number, types: readonly string[], exceptSender: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT COUNT(*) AS n FROM events e JOIN rooms r ON r.room_nid = e.room_nid JOIN event_types t ON t.type_nid = e.type_nid
     WHERE r.room_id = $1 AND e.stream_pos > $2 AND t.event_type = ANY($3::text[]) AND e.sender <> $4`,
    [roomId, afterPos, [...types], exceptSender],
  );
  return Number(rows[0]?.n ?? 0);
}

/**
 * Some entries of a stored state snapshot, by (type, state_key): the cheap way to ask "what
 * was the history visibility and this user's membership before that event" without loading
 * the room's whole state. Returns "type\u0000state_key" -> event id.
 */
export async function getSnapshotEntries(
  db: Queryable,
  snapshotNid: number | null,
  keys: ReadonlyArray<readonly [type: string, stateKey: string]>,
): Promise<Map<string, string>> {
  if (snapshotNid === null || keys.length === 0) return new Map();
  const { rows } = await db.query<{ event_type: string; state_key: string; event_id: string }>(
    `WITH RECURSIVE chain (snapshot_nid, parent_nid, lvl) AS (
       SELECT snapshot_nid, parent_nid, 0 FROM state_snapshots WHERE snapshot_nid = $1
       UNION ALL
       SELECT s.snapshot_nid, s.parent_nid, c.lvl + 1 FROM state_snapshots s JOIN chain c ON s.snapshot_nid = c.parent_nid
     ),
     wanted AS (
       SELECT t.type_nid, k.state_key_nid, t.event_type, k.state_key
       FROM unnest($2::text[], $3::text[]) AS w (event_type, state_key)
       JOIN event_types t ON t.event_type = w.event_type
       JOIN event_state_keys k ON k.state_key = w.state_key
     )
     SELECT DISTINCT ON (e.type_nid, e.state_key_nid) w.event_type, w.state_key, ev.event_id
     FROM chain c
     JOIN state_snapshot_entries e ON e.snapshot_nid = c.snapshot_nid
     JOIN wanted w ON w.type_nid = e.type_nid AND w.state_key_nid = e.state_key_nid
     JOIN events ev ON ev.event_nid = e.event_nid
     ORDER BY e.type_nid, e.state_key_nid, c.lvl`,
    [snapshotNid, keys.map(([t]) => t), keys.map(([, k]) => k)],
  );
  return new Map(rows.map((r) => [`${r.event_type}\u0000${r.state_key}`, r.event_id]));
}
