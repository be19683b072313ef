import type { Queryable } from '../db.js';
import { getUserMembershipInRoom } from './client-reads.js';
import { getCurrentStateEvent } from './current-state.js';

/**
 * What a restricted join's decision reads (the shape of RestrictedJoinFacts in
 * @tessera/protocol): the room's join rules, create and power levels, the joining user's
 * membership, this server's users joined to it, and for each allowed room whether this server is
 * in it and the user's membership there as this server's copy of that room says.
 */
export interface RestrictedJoinReads {
  joinRules: Record<string, unknown> | undefined;
  create: { sender: string; content: Record<string, unknown> } | undefined;
  powerLevels: { sender: string; content: Record<string, unknown> } | undefined;
  targetMembership: string | undefined;
  localJoined: string[];
  allowedRooms: Map<string, { serverIn: boolean; userMembership: string | undefined }>;
}

/** The users of `serverName` joined to the room (at most `limit`), by user id. */
async function localJoinedMembers(db: Queryable, roomId: string, serverName: string, limit: number | null): Promise<string[]> {
  const { rows } = await db.query<{ user_id: string }>(
    `SELECT m.user_id FROM room_memberships m JOIN rooms r ON r.room_nid = m.room_nid
     WHERE r.room_id = $1 AND m.membership = 'join' AND right(m.user_id, length($2) + 1) = ':' || $2
     ORDER BY m.user_id LIMIT $3`,
    [roomId, serverName, limit],
  );
  return rows.map((r) => r.user_id);
}

/** `allowedRoomIds` reads the allow list out of the join rules content (the caller's rules). */
export async function getRestrictedJoinReads(
  db: Queryable,
  roomId: string,
  userId: string,
  serverName: string,
  allowedRoomIds: (joinRules: Record<string, unknown> | undefined) => string[],
): Promise<RestrictedJoinReads> {
  const [joinRules, create, powerLevels, target] = await Promise.all([
    getCurrentStateEvent(db, roomId, 'm.room.join_rules', ''),
    getCurrentStateEvent(db, roomId, 'm.room.create', ''),
    getCurrentStateEvent(db, roomId, 'm.room.power_levels', ''),
    getUserMembershipInRoom(db, roomId, userId),
  ]);
  const event = (e: typeof create) => (e ? { sender: e.sender, content: (e.json.content ?? {}) as Record<string, unknown> } : undefined);
  const joinRulesContent = event(joinRules)?.content;
  const allowedRooms = new Map<string, { serverIn: boolean; userMembership: string | undefined }>();
  for (const allowed of allowedRoomIds(joinRulesContent)) {
    const serverIn = (await localJoinedMembers(db, allowed, serverName, 1)).length > 0;
    allowedRooms.set(allowed, { serverIn, userMembership: serverIn ? (await getUserMembershipInRoom(db, allowed, userId))?.membership : undefined });
  }
  return {
    joinRules: joinRulesContent,
    create: event(create),
    powerLevels: event(powerLevels),
    targetMembership: target?.membership,
    localJoined: await localJoinedMembers(db, roomId, serverName, null),
    allowedRooms,
  };
}
