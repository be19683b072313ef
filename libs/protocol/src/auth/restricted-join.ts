/**
 * Restricted joins (spec: Client-Server "Restricted rooms", Server-Server "Restricted rooms"):
 * whether a join into a room whose join rule is `restricted` (v8+) or `knock_restricted` (v10+)
 * needs `join_authorised_via_users_server`, and which of this server's users vouches for it.
 * Pure: the caller reads the room's state and the memberships it can see.
 */
import type { RoomEvent } from '../event-types.js';
import type { RoomVersion } from '../room-versions.js';
import { allowedRoomIds } from '../spaces.js';
import { PowerContext } from './power-levels.js';

/** What the decision needs, read by the caller from the room held here and from the allowed rooms. */
export interface RestrictedJoinFacts {
  /** Current m.room.join_rules content. */
  joinRules: Record<string, unknown> | undefined;
  /** Current m.room.create and m.room.power_levels (for the invite level and users' levels). */
  create: Pick<RoomEvent, 'sender' | 'content'> | undefined;
  powerLevels: Pick<RoomEvent, 'sender' | 'content'> | undefined;
  /** The joining user's current membership in the room. */
  targetMembership: string | undefined;
  /** This server's users joined to the room. */
  localJoined: readonly string[];
  /** For each allowed room: is this server in it (a local user joined), and the joining user's membership there as our copy says. */
  allowedRooms: ReadonlyMap<string, { serverIn: boolean; userMembership: string | undefined }>;
}

export type RestrictedJoinDecision =
  /** Not a restricted room, or the user is joined or invited already: an ordinary join. */
  | { outcome: 'unrestricted' }
  /** The user meets an allow condition; this local user authorises the join. */
  | { outcome: 'authorised'; authoriser: string }
  /** This server can check the conditions and the user meets none (403 M_FORBIDDEN). */
  | { outcome: 'not-allowed' }
  /** This server is in none of the allowed rooms (400 M_UNABLE_TO_AUTHORISE_JOIN). */
  | { outcome: 'unable-to-authorise' }
  /** The user meets a condition but no local user may invite (400 M_UNABLE_TO_GRANT_JOIN). */
  | { outcome: 'unable-to-grant' };

/** Whether the join rule makes joins of uninvited users restricted in this room version. */
export function isRestrictedJoinRule(joinRule: unknown, roomVersion: RoomVersion): boolean {
  return (joinRule === 'restricted' && roomVersion.restrictedJoinRule) || (joinRule === 'knock_restricted' && roomVersion.knockRestrictedJoinRule);
}

/**
 * The local user who authorises a restricted join: one joined with at least the invite level.
 * Deterministic, so every replica names the same one: the highest level, then the lowest user id.
 */
export function chooseAuthoriser(localJoined: readonly string[], power: PowerContext): string | undefined {
  const invite = power.level('invite');
  const able = localJoined.map((userId) => ({ userId, level: power.userLevel(userId) })).filter((c) => c.level >= invite);
  able.sort((a, b) => (a.level !== b.level ? b.level - a.level : a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
  return able[0]?.userId;
}

export function decideRestrictedJoin(facts: RestrictedJoinFacts, roomVersion: RoomVersion): RestrictedJoinDecision {
  if (!isRestrictedJoinRule(facts.joinRules?.join_rule, roomVersion)) return { outcome: 'unrestricted' };
  // Joined or invited users join as in an invite-only room; a banned one is refused by the auth rules.
  if (facts.targetMembership === 'join' || facts.targetMembership === 'invite' || facts.targetMembership === 'ban') return { outcome: 'unrestricted' };
  const visible = allowedRoomIds(facts.joinRules ?? {}).map((id) => facts.allowedRooms.get(id)).filter((r) => r?.serverIn);
  if (visible.length === 0) return { outcome: 'unable-to-authorise' };
  if (!visible.some((r) => r!.userMembership === 'join')) return { outcome: 'not-allowed' };
  const power = new PowerContext(facts.powerLevels as RoomEvent | undefined, facts.create as RoomEvent | undefined, roomVersion);
  const authoriser = chooseAuthoriser(facts.localJoined, power);
  return authoriser ? { outcome: 'authorised', authoriser } : { outcome: 'unable-to-grant' };
}
