import { getRoomMembers, getUserMembershipHistory, getUsersSharingRooms, type Db, type UserMembership } from '@tessera/storage';
import type { RecentTimeline } from './recent-timeline.js';

/**
 * device_lists.left of an incremental /sync (spec "Tracking the device list for a user"):
 * users who shared a room with the user at `since` and share none now, so the client stops
 * tracking their devices. As Synapse, any joined room counts, encrypted or not. The
 * candidates are the members of rooms the user left in the window and the members who left
 * the user's rooms in it; only when there are some is the sharing asked of the database.
 * Also returns the users who joined the user's rooms in the window, for device_lists.changed.
 */
export async function usersNoLongerSharing(
  db: Db,
  recent: RecentTimeline | undefined,
  userId: string,
  memberships: readonly UserMembership[],
  joinedNow: readonly string[],
  since: number,
  upTo: number,
): Promise<{ left: string[]; joined: string[] }> {
  // [room, user, checked]: a user who may have shared that room with us at `since` (checked: known to have).
  const candidates: Array<[string, string, boolean]> = [];
  // Users who joined one of the user's rooms in the window: the client starts tracking them (device_lists.changed, as Synapse).
  const joined = new Set<string>();
  for (const m of memberships) {
    if (m.streamPos <= since || m.streamPos > upTo || m.membership === 'join' || m.membership === 'invite' || m.membership === 'knock') continue;
    if ((await membershipAt(db, m.roomId, userId, since)) !== 'join') continue;
    for (const u of await getRoomMembers(db, m.roomId, 'join')) candidates.push([m.roomId, u, true]);
  }
  if (joinedNow.length > 0) {
    const notes = recent?.eventsBetween(since, upTo, new Set(joinedNow));
    if (notes) {
      for (const n of notes) {
        if (n.membership?.membership === 'join') joined.add(n.membership.userId);
        else if (n.membership && (n.membership.membership === 'leave' || n.membership.membership === 'ban')) candidates.push([n.roomId, n.membership.userId, false]);
      }
    } else {
      const { rows } = await db.query<{ room_id: string; user_id: string; membership: string }>(
        `SELECT r.room_id, m.user_id, m.membership FROM room_memberships m JOIN rooms r ON r.room_nid = m.room_nid
          WHERE r.room_id = ANY($1::text[]) AND m.membership IN ('join', 'leave', 'ban') AND m.stream_pos > $2 AND m.stream_pos <= $3`,
        [[...joinedNow], since, upTo],
      );
      for (const r of rows) {
        if (r.membership === 'join') joined.add(r.user_id);
        else candidates.push([r.room_id, r.user_id, false]);
      }
    }
  }
  joined.delete(userId);
  const others = candidates.filter(([, u]) => u !== userId);
  if (others.length === 0) return { left: [], joined: [...joined] };
  const sharing = new Set(await getUsersSharingRooms(db, userId));
  const left = new Set<string>();
  for (const [roomId, u, checked] of others) {
    if (sharing.has(u) || left.has(u)) continue;
    // A member who left one of our rooms counts only if they were joined to it at `since` (not a rejected invite).
    if (checked || (await membershipAt(db, roomId, u, since)) === 'join') left.add(u);
  }
  return { left: [...left].sort(), joined: [...joined] };
}

async function membershipAt(db: Db, roomId: string, userId: string, position: number): Promise<string | undefined> {
  let membership: string | undefined;
  for (const h of await getUserMembershipHistory(db, roomId, userId)) if (h.streamPos <= position) membership = h.membership;
  return membership;
}
