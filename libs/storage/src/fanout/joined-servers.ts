import type { Queryable } from '../db.js';

/**
 * Joined servers, kept by persistence inside the append transaction.
 *
 * room_joined_servers follows room_memberships: every membership change moves the count of
 * the member's server. For each local timeline event of the batch, the servers joined before
 * the batch and after it (so a kicked or leaving server still receives its leave) are written
 * to event_destinations, minus the sender's own server: fanout-sender reads its queue from
 * there and never recomputes room membership.
 */

/** The server part of a user id (everything after the first colon). */
export function serverOfUser(userId: string): string {
  const i = userId.indexOf(':');
  return i < 0 ? '' : userId.slice(i + 1);
}

export interface JoinedServersBatch {
  /** Users whose m.room.member state entry the batch changes. */
  memberUserIds: string[];
  /** Whether the batch holds events built by this server (only those are sent out). */
  hasLocalEvents: boolean;
}

export interface AppendedForFanout {
  streamPos: number | null;
  duplicate: boolean;
  local: boolean;
  sender: string;
  /**
   * The user another user's leave is about (a rescinded invite, a refused knock, a kick): that
   * user's server receives the event too, joined or not, as Synapse sends it, so that a server
   * holding only the invite learns that it was rescinded.
   */
  membershipTarget?: string;
}

export interface JoinedServersChange {
  /**
   * Call after room_memberships was updated for the batch, with the batch's appended events.
   * Returns the stream positions of the events queued for other servers.
   */
  finish(events: AppendedForFanout[]): Promise<number[]>;
}

const NOTHING: JoinedServersChange = { finish: async () => [] };

/** Call before the batch's current-state changes are applied. */
export async function beginJoinedServersChange(tx: Queryable, roomNid: number, batch: JoinedServersBatch): Promise<JoinedServersChange> {
  const users = [...new Set(batch.memberUserIds)];
  if (users.length === 0 && !batch.hasLocalEvents) return NOTHING;
  const joinedBefore = new Set<string>();
  const wasJoined = new Set<string>();
  if (batch.hasLocalEvents) (await joinedServers(tx, roomNid)).forEach((s) => joinedBefore.add(s));
  if (users.length > 0) (await joinedUsers(tx, roomNid, users)).forEach((u) => wasJoined.add(u));

  return {
    async finish(events) {
      if (users.length > 0) {
        const isJoined = new Set(await joinedUsers(tx, roomNid, users));
        const delta = new Map<string, number>();
        for (const u of users) {
          const d = (isJoined.has(u) ? 1 : 0) - (wasJoined.has(u) ? 1 : 0);
          if (d !== 0) delta.set(serverOfUser(u), (delta.get(serverOfUser(u)) ?? 0) + d);
        }
        if (delta.size > 0) await applyDelta(tx, roomNid, delta);
      }
      const outbound = events.filter((e) => e.local && e.streamPos !== null && !e.duplicate);
      if (outbound.length === 0) return [];
      const all = new Set(joinedBefore);
      for (const s of await joinedServers(tx, roomNid)) all.add(s);
      const servers: string[] = [];
      const positions: number[] = [];
      for (const e of outbound) {
        const own = serverOfUser(e.sender);
        const to = new Set(all);
        if (e.membershipTarget !== undefined) to.add(serverOfUser(e.membershipTarget));
        for (const s of to) {
          if (s === own) continue;
          servers.push(s);
          positions.push(e.streamPos!);
        }
      }
      if (servers.length === 0) return [];
      await tx.query(
        `INSERT INTO event_destinations (server_name, stream_pos, room_nid)
         SELECT s, p, $1 FROM unnest($2::text[], $3::bigint[]) AS u (s, p) ON CONFLICT DO NOTHING`,
        [roomNid, servers, positions],
      );
      return [...new Set(positions)];
    },
  };
}

/**
 * For local timeline events of rooms whose membership the batch does not change (joined
 * servers before = after): their destinations, for any number of rooms, in one statement.
 * Returns the stream positions of the events queued for at least one server.
 */
export async function recordDestinations(tx: Queryable, events: Array<{ roomNid: number; streamPos: number; sender: string }>): Promise<number[]> {
  if (events.length === 0) return [];
  const { rows } = await tx.query<{ stream_pos: string | number }>(
    `WITH queued AS (
       INSERT INTO event_destinations (server_name, stream_pos, room_nid)
       SELECT j.server_name, u.p, u.r FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS u (r, p, own)
       JOIN room_joined_servers j ON j.room_nid = u.r WHERE j.server_name <> u.own
       ON CONFLICT DO NOTHING
       RETURNING stream_pos
     )
     SELECT DISTINCT stream_pos FROM queued`,
    [events.map((e) => e.roomNid), events.map((e) => e.streamPos), events.map((e) => serverOfUser(e.sender))],
  );
  return rows.map((r) => Number(r.stream_pos));
}

async function joinedUsers(tx: Queryable, roomNid: number, users: string[]): Promise<string[]> {
  const { rows } = await tx.query<{ user_id: string }>(
    `SELECT user_id FROM room_memberships WHERE room_nid = $1 AND user_id = ANY($2::text[]) AND membership = 'join'`,
    [roomNid, users],
  );
  return rows.map((r) => r.user_id);
}

async function applyDelta(tx: Queryable, roomNid: number, delta: Map<string, number>): Promise<void> {
  const servers = [...delta.keys()];
  await tx.query(
    `INSERT INTO room_joined_servers (room_nid, server_name, joined_members)
     SELECT $1, s, d FROM unnest($2::text[], $3::int[]) AS u (s, d)
     ON CONFLICT (room_nid, server_name) DO UPDATE SET joined_members = room_joined_servers.joined_members + EXCLUDED.joined_members`,
    [roomNid, servers, servers.map((s) => delta.get(s)!)],
  );
  await tx.query('DELETE FROM room_joined_servers WHERE room_nid = $1 AND server_name = ANY($2::text[]) AND joined_members <= 0', [roomNid, servers]);
}

/** Servers with joined members in the room's current state. */
export async function joinedServers(db: Queryable, roomNid: number): Promise<string[]> {
  const { rows } = await db.query<{ server_name: string }>('SELECT server_name FROM room_joined_servers WHERE room_nid = $1', [roomNid]);
  return rows.map((r) => r.server_name);
}

/** Servers with joined members in the room's current state, by room id (for EDUs to a room). */
export async function joinedServersOfRoom(db: Queryable, roomId: string): Promise<string[]> {
  const { rows } = await db.query<{ server_name: string }>(
    'SELECT j.server_name FROM room_joined_servers j JOIN rooms r ON r.room_nid = j.room_nid WHERE r.room_id = $1',
    [roomId],
  );
  return rows.map((r) => r.server_name);
}
