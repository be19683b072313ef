import type { Queryable } from '../db.js';

/** Rooms (table rooms): the room's version and its append sequence. */
export interface StoredRoom {
  roomNid: number;
  roomId: string;
  roomVersion: string;
  /** Incremented by every append; the optimistic-concurrency guard. */
  sequence: number;
}

export async function getRoom(db: Queryable, roomId: string): Promise<StoredRoom | null> {
  const { rows } = await db.query<{ room_nid: number; room_id: string; room_version: string; sequence: number }>(
    'SELECT room_nid, room_id, room_version, sequence FROM rooms WHERE room_id = $1',
    [roomId],
  );
  const r = rows[0];
  return r ? { roomNid: r.room_nid, roomId: r.room_id, roomVersion: r.room_version, sequence: r.sequence } : null;
}

export async function getRoomSequence(db: Queryable, roomId: string): Promise<number | null> {
  const { rows } = await db.query<{ sequence: number }>('SELECT sequence FROM rooms WHERE room_id = $1', [roomId]);
  return rows[0]?.sequence ?? null;
}

/** What the decider keeps of a room: its version, sequence, current state and forward extremities. */
export interface RoomHead {
  roomVersion: string;
  sequence: number;
  /** [type, state_key, event_id] */
  state: Array<[string, string, string]>;
  extremities: Array<{ eventId: string; depth: number; stateAfterNid: number | null }>;
}

/**
 * The room's head in one statement: one round trip, and one snapshot of the database, so the
 * sequence, state and extremities always belong together.
 */
export async function getRoomHead(db: Queryable, roomId: string): Promise<RoomHead | null> {
  const { rows } = await db.query<{ room_version: string; sequence: number; state: Array<[string, string, string]> | string; ext: Array<[string, number, number | null]> | string }>(
    `SELECT r.room_version, r.sequence,
       (SELECT COALESCE(json_agg(json_build_array(t.event_type, k.state_key, e.event_id)), '[]'::json)
          FROM current_state c JOIN event_types t ON t.type_nid = c.type_nid
          JOIN event_state_keys k ON k.state_key_nid = c.state_key_nid JOIN events e ON e.event_nid = c.event_nid
         WHERE c.room_nid = r.room_nid) AS state,
       (SELECT COALESCE(json_agg(json_build_array(e.event_id, e.depth, e.state_after_nid) ORDER BY e.depth DESC, e.event_nid DESC), '[]'::json)
          FROM forward_extremities f JOIN events e ON e.event_nid = f.event_nid
         WHERE f.room_nid = r.room_nid) AS ext
     FROM rooms r WHERE r.room_id = $1`,
    [roomId],
  );
  const r = rows[0];
  if (!r) return null;
  const parse = <T>(v: T | string): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v);
  return {
    roomVersion: r.room_version,
    sequence: r.sequence,
    state: parse(r.state),
    extremities: parse(r.ext).map(([eventId, depth, stateAfterNid]) => ({ eventId, depth: Number(depth), stateAfterNid: stateAfterNid === null ? null : Number(stateAfterNid) })),
  };
}

/** The heads of several rooms in one statement (the room-server reads concurrent reloads together). Rooms not stored are absent. */
export async function getRoomHeads(db: Queryable, roomIds: readonly string[]): Promise<Map<string, RoomHead>> {
  const out = new Map<string, RoomHead>();
  if (roomIds.length === 0) return out;
  const { rows } = await db.query<{ room_id: string; room_version: string; sequence: number; state: Array<[string, string, string]> | string; ext: Array<[string, number, number | null]> | string }>(
    `SELECT r.room_id, r.room_version, r.sequence,
       (SELECT COALESCE(json_agg(json_build_array(t.event_type, k.state_key, e.event_id)), '[]'::json)
          FROM current_state c JOIN event_types t ON t.type_nid = c.type_nid
          JOIN event_state_keys k ON k.state_key_nid = c.state_key_nid JOIN events e ON e.event_nid = c.event_nid
         WHERE c.room_nid = r.room_nid) AS state,
       (SELECT COALESCE(json_agg(json_build_array(e.event_id, e.depth, e.state_after_nid) ORDER BY e.depth DESC, e.event_nid DESC), '[]'::json)
          FROM forward_extremities f JOIN events e ON e.event_nid = f.event_nid
         WHERE f.room_nid = r.room_nid) AS ext
     FROM rooms r WHERE r.room_id = ANY($1::text[])`,
    [roomIds],
  );
  const parse = <T>(v: T | string): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v);
  for (const r of rows) {
    out.set(r.room_id, {
      roomVersion: r.room_version,
      sequence: r.sequence,
      state: parse(r.state),
      extremities: parse(r.ext).map(([eventId, depth, stateAfterNid]) => ({
        eventId, depth: Number(depth), stateAfterNid: stateAfterNid === null ? null : Number(stateAfterNid),
      })),
    });
  }
  return out;
}
