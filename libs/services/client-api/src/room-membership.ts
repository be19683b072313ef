/**
 * What client-api asks of the rooms side (the pipeline's read models) for typing, receipts
 * and device lists. The rooms/sync work provides it under ROOM_MEMBERSHIP; until then the
 * checks that need it are skipped (see each caller's TODO).
 */
export interface RoomMembership {
  /** Whether the user is joined to the room now. */
  isJoined(roomId: string, userId: string): Promise<boolean>;
  /** Whether the event exists in that room (receipts, read markers). */
  eventInRoom?(roomId: string, eventId: string): Promise<boolean>;
  /** Users sharing at least one room with the user (device list changes, presence). */
  usersSharingRoomsWith?(userId: string): Promise<string[]>;
}

export const ROOM_MEMBERSHIP = Symbol('ROOM_MEMBERSHIP');
