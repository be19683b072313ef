import type { Queryable } from '../db.js';
import type { StateTriple } from './state-snapshots.js';
import { getEvents, type StoredEvent } from './events.js';

/** Current state and memberships (tables current_state, room_memberships): the read models sync uses. */

/** The room's current state as (type, state_key, event_id) triples. */
export async function getCurrentState(db: Queryable, roomId: string): Promise<StateTriple[]> {
  const { rows } = await db.query<{ event_type: string; state_key: string; event_id: string }>(
    `SELECT t.event_type, k.state_key, e.event_id FROM current_state c
     JOIN rooms r ON r.room_nid = c.room_nid
     JOIN event_types t ON t.type_nid = c.type_nid
     JOIN event_state_keys k ON k.state_key_nid = c.state_key_nid
     JOIN events e ON e.event_nid = c.event_nid
     WHERE r.room_id = $1`,
    [roomId],
  );
  return rows.map((r) => [r.event_type, r.state_key, r.event_id]);
}

/** Current state events, optionally of some types only. */
export async function getCurrentStateEvents(db: Queryable, roomId: string, types?: readonly string[]): Promise<StoredEvent[]> {
  const state = await getCurrentState(db, roomId);
  const ids = state.filter(([t]) => !types || types.includes(t)).map(([, , id]) => id);
  const events = await getEvents(db, ids);
  return ids.map((id) => events.get(id)!).filter(Boolean);
}

export async function getCurrentStateEvent(db: Queryable, roomId: string, type: string, stateKey: string): Promise<StoredEvent | null> {
  const { rows } = await db.query<{ event_id: string }>(
    `SELECT e.event_id FROM current_state c
     JOIN rooms r ON r.room_nid = c.room_nid
     JOIN event_types t ON t.type_nid = c.type_nid
     JOIN event_state_keys k ON k.state_key_nid = c.state_key_nid
     JOIN events e ON e.event_nid = c.event_nid
     WHERE r.room_id = $1 AND t.event_type = $2 AND k.state_key = $3`,
    [roomId, type, stateKey],
  );
  if (rows.length === 0) return null;
  return (await getEvents(db, [rows[0]!.event_id])).get(rows[0]!.event_id) ?? null;
}

export interface UserMembership {
  roomId: string;
  userId: string;
  /** join, invite, leave, ban or knock. */
  membership: string;
  eventId: string;
  /** Stream position at which this membership became current. */
  streamPos: number;
}

/** A user's current membership in every room they have a membership event in. */
export async function getUserMemberships(db: Queryable, userId: string, memberships?: readonly string[]): Promise<UserMembership[]> {
  const { rows } = await db.query<{ room_id: string; membership: string; event_id: string; stream_pos: number }>(
    `SELECT r.room_id, m.membership, e.event_id, m.stream_pos FROM room_memberships m
     JOIN rooms r ON r.room_nid = m.room_nid JOIN events e ON e.event_nid = m.event_nid
     WHERE m.user_id = $1 AND ($2::text[] IS NULL OR m.membership = ANY($2::text[]))
     ORDER BY m.stream_pos`,
    [userId, memberships ? [...memberships] : null],
  );
  return rows.map((r) => ({ roomId: r.room_id, userId, membership: r.membership, eventId: r.event_id, streamPos: r.stream_pos }));
}

/** A user's memberships that changed in (since, upTo]: incremental sync's rooms to look at. */
export async function getMembershipChangesSince(db: Queryable, userId: string, since: number, upTo?: number): Promise<UserMembership[]> {
  const { rows } = await db.query<{ room_id: string; membership: string; event_id: string; stream_pos: number }>(
    `SELECT r.room_id, m.membership, e.event_id, m.stream_pos FROM room_memberships m
     JOIN rooms r ON r.room_nid = m.room_nid JOIN events e ON e.event_nid = m.event_nid
     WHERE m.user_id = $1 AND m.stream_pos > $2 AND ($3::bigint IS NULL OR m.stream_pos <= $3)
     ORDER BY m.stream_pos`,
    [userId, since, upTo ?? null],
  );
  return rows.map((r) => ({ roomId: r.room_id, userId, membership: r.membership, eventId: r.event_id, streamPos: r.stream_pos }));
}

/** Every member of a room with a given membership (default: join). */
export async function getRoomMembers(db: Queryable, roomId: string, membership = 'join'): Promise<string[]> {
  const { rows } = await db.query<{ user_id: string }>(
    `SELECT m.user_id FROM room_memberships m JOIN rooms r ON r.room_nid = m.room_nid
     WHERE r.room_id = $1 AND m.membership = $2 ORDER BY m.user_id`,
    [roomId, membership],
  );
  return rows.map((r) => r.user_id);
}

/** Server names with at least one joined member (fanout's destinations for the room now). */
export async function getJoinedServers(db: Queryable, roomId: string): Promise<string[]> {
  const members = await getRoomMembers(db, roomId, 'join');
  return [...new Set(members.map((u) => u.slice(u.indexOf(':') + 1)))].sort();
}
