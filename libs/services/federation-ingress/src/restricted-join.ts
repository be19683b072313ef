/**
 * The resident server's side of restricted joins (spec: Server-Server "Restricted rooms"): may a
 * remote user join a restricted / knock_restricted room held here, and which of our users
 * vouches for it. The decision is @tessera/protocol's; this reads what it needs and turns
 * refusals into the spec's errors.
 */
import { allowedRoomIds, decideRestrictedJoin, type RestrictedJoinDecision, type RoomVersion } from '@tessera/protocol';
import { MatrixError } from '@tessera/http';
import { getRestrictedJoinReads, type Db } from '@tessera/storage';

export async function restrictedJoinDecision(db: Db, serverName: string, rv: RoomVersion, roomId: string, userId: string): Promise<RestrictedJoinDecision> {
  return decideRestrictedJoin(await getRestrictedJoinReads(db, roomId, userId, serverName, (c) => allowedRoomIds(c ?? {})), rv);
}

/** The spec's error for a decision that lets nobody vouch for the join; undefined when the join may go ahead. */
export function restrictedJoinRefusal(decision: RestrictedJoinDecision, roomId: string, userId: string): MatrixError | undefined {
  switch (decision.outcome) {
    case 'not-allowed':
      return new MatrixError(403, 'M_FORBIDDEN', `${userId} may not join ${roomId}: the room is restricted and ${userId} is not joined to any allowed room this server is in`);
    case 'unable-to-authorise':
      return new MatrixError(400, 'M_UNABLE_TO_AUTHORISE_JOIN', `this server is in none of the rooms ${roomId}'s join rules allow, so it cannot check whether ${userId} may join`);
    case 'unable-to-grant':
      return new MatrixError(400, 'M_UNABLE_TO_GRANT_JOIN', `no user of this server in ${roomId} may invite: try another server of the room`);
    default:
      return undefined;
  }
}
