/**
 * A local user's join of a room held here whose join rule is restricted or knock_restricted
 * (spec: Client-Server "Restricted rooms"): the join names a local user able to invite in
 * `join_authorised_via_users_server`, or is refused. When no local user may invite, another
 * server in the room may still authorise it: the caller joins through them.
 */
import { allowedRoomIds, decideRestrictedJoin, type RoomVersion } from '@tessera/protocol';
import { BusError } from '@tessera/bus';
import { getJoinedServers, getRestrictedJoinReads, type Db } from '@tessera/storage';

export type LocalJoinPlan =
  | { route: 'local'; content: Record<string, unknown> }
  /** No local user may authorise the join: ask these other servers in the room (make_join). */
  | { route: 'remote'; servers: string[] };

export async function planLocalJoin(
  db: Db,
  serverName: string,
  roomVersion: RoomVersion,
  roomId: string,
  userId: string,
  content: Record<string, unknown>,
): Promise<LocalJoinPlan> {
  // The field is ours to fill: a client's value is never trusted.
  const { join_authorised_via_users_server: _ignored, ...own } = content;
  const reads = await getRestrictedJoinReads(db, roomId, userId, serverName, (c) => allowedRoomIds(c ?? {}));
  const decision = decideRestrictedJoin(reads, roomVersion);
  switch (decision.outcome) {
    case 'unrestricted':
      return { route: 'local', content: own };
    case 'authorised':
      return { route: 'local', content: { ...own, join_authorised_via_users_server: decision.authoriser } };
    case 'not-allowed':
    case 'unable-to-authorise':
      // Our user's memberships are all known here: not being in any allowed room we hold means being in none.
      throw new BusError('M_FORBIDDEN', `${userId} may not join ${roomId}: the room is restricted and ${userId} is not joined to any of the rooms its join rules allow`);
    case 'unable-to-grant': {
      const servers = (await getJoinedServers(db, roomId)).filter((s) => s !== serverName);
      if (servers.length > 0) return { route: 'remote', servers };
      throw new BusError('M_FORBIDDEN', `${userId} may join ${roomId} (restricted), but no user of this server in the room may invite, and no other server is in it to authorise the join`);
    }
  }
}
