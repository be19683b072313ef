import type { Queryable } from '@tessera/storage';

/**
 * Event types that bump a room (MSC4186 `bump_stamp`: "proper" activity, not e.g. reactions
 * or membership churn).
 */
export const BUMP_EVENT_TYPES: readonly string[] = ['m.room.create', 'm.room.message', 'm.room.encrypted', 'm.sticker', 'm.call.invite', 'm.poll.start', 'm.beacon_info'];

/** What the room list needs of a room held here, as of a stream position. */
export interface RoomActivity {
  /** Stream position of the room's last event at or before the position. */
  last?: number;
  /** Stream position of its last event of a bump type at or before the position. */
  bump?: number;
  /** m.room.create content `type` now (null: none). */
  roomType: string | null;
  encrypted: boolean;
}

/**
 * The list facts of many rooms in one statement (sliding sync orders and filters every room of
 * the user at each request, so one query per room would not scale). Each subquery walks the
 * (room_nid, stream_pos) index backwards from the position. Rooms not held here are absent.
 */
export async function getRoomActivity(db: Queryable, roomIds: readonly string[], upTo: number): Promise<Map<string, RoomActivity>> {
  const out = new Map<string, RoomActivity>();
  if (roomIds.length === 0) return out;
  const { rows } = await db.query<{ room_id: string; last_pos: string | number | null; bump_pos: string | number | null; room_type: string | null; encrypted: boolean }>(
    `SELECT r.room_id,
       (SELECT e.stream_pos FROM events e
         WHERE e.room_nid = r.room_nid AND e.stream_pos IS NOT NULL AND e.stream_pos <= $2
         ORDER BY e.stream_pos DESC LIMIT 1) AS last_pos,
       (SELECT e.stream_pos FROM events e JOIN event_types t ON t.type_nid = e.type_nid
         WHERE e.room_nid = r.room_nid AND e.stream_pos IS NOT NULL AND e.stream_pos <= $2 AND t.event_type = ANY($3::text[])
         ORDER BY e.stream_pos DESC LIMIT 1) AS bump_pos,
       (SELECT (e.json::json)->'content'->>'type' FROM current_state c
          JOIN event_types t ON t.type_nid = c.type_nid JOIN event_state_keys k ON k.state_key_nid = c.state_key_nid
          JOIN events e ON e.event_nid = c.event_nid
         WHERE c.room_nid = r.room_nid AND t.event_type = 'm.room.create' AND k.state_key = '') AS room_type,
       EXISTS (SELECT 1 FROM current_state c
          JOIN event_types t ON t.type_nid = c.type_nid JOIN event_state_keys k ON k.state_key_nid = c.state_key_nid
         WHERE c.room_nid = r.room_nid AND t.event_type = 'm.room.encryption' AND k.state_key = '') AS encrypted
     FROM rooms r WHERE r.room_id = ANY($1::text[])`,
    [[...roomIds], upTo, [...BUMP_EVENT_TYPES]],
  );
  for (const r of rows) {
    const activity: RoomActivity = { roomType: r.room_type ?? null, encrypted: r.encrypted === true };
    if (r.last_pos !== null) activity.last = Number(r.last_pos);
    if (r.bump_pos !== null) activity.bump = Number(r.bump_pos);
    out.set(r.room_id, activity);
  }
  return out;
}
