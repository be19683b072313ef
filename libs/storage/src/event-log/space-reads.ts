import type { Queryable } from '../db.js';
import { getRoomMemberCounts } from './client-reads.js';
import { getCurrentStateEvents } from './current-state.js';
import { getRoom } from './rooms.js';

/** The current state a room's summary and space children are made of (spec "Spaces"). */
const SPACE_SUMMARY_STATE_TYPES = [
  'm.room.create', 'm.room.name', 'm.room.topic', 'm.room.canonical_alias', 'm.room.avatar', 'm.room.join_rules',
  'm.room.history_visibility', 'm.room.guest_access', 'm.room.encryption', 'm.space.child',
];

export interface SpaceRoomState {
  roomVersion: string;
  /** Current state events of the summary's types and every m.space.child, in client shape. */
  state: Array<{ type: string; state_key: string; sender: string; content: Record<string, unknown>; origin_server_ts: number }>;
  joinedMembers: number;
}

/** What the hierarchy and room summary APIs show of a room held here; undefined when this server holds no state of it. */
export async function getSpaceRoomState(db: Queryable, roomId: string): Promise<SpaceRoomState | undefined> {
  const room = await getRoom(db, roomId);
  if (!room) return undefined;
  const events = await getCurrentStateEvents(db, roomId, SPACE_SUMMARY_STATE_TYPES);
  if (!events.some((e) => e.type === 'm.room.create')) return undefined;
  const counts = await getRoomMemberCounts(db, roomId);
  return {
    roomVersion: room.roomVersion,
    state: events.map((e) => ({
      type: e.type,
      state_key: e.stateKey ?? '',
      sender: e.sender,
      content: (e.json.content ?? {}) as Record<string, unknown>,
      origin_server_ts: e.originServerTs,
    })),
    joinedMembers: counts.join ?? 0,
  };
}
