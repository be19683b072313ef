/** Devices whose sent members are remembered (least recently syncing dropped first). */
const MAX_DEVICES = 20_000;
/** Members remembered per room of a device; past this the room starts over (they are sent again: redundant, never missing). */
const MAX_MEMBERS_PER_ROOM = 2_000;

/**
 * Which membership events each device was sent by a lazy-loading /sync (spec "Lazy-loading room
 * members": the server may skip "redundant membership events" the client already has, unless
 * include_redundant_members). Per process and in memory, as Synapse: a device whose syncs go to
 * another replica, or after a restart, is sent its members again, which the spec allows.
 */
export class LazyMembersCache {
  /** `user|device` -> room -> member user -> the member event id sent. */
  private readonly devices = new Map<string, Map<string, Map<string, string>>>();

  /** A new sync sequence (no `since`): the device is taken to remember nothing. */
  forget(userId: string, deviceId: string): void {
    this.devices.delete(key(userId, deviceId));
  }

  /** The member event ids sent to the device in this room (user -> event id); undefined when none. */
  sent(userId: string, deviceId: string, roomId: string): ReadonlyMap<string, string> | undefined {
    return this.devices.get(key(userId, deviceId))?.get(roomId);
  }

  remember(userId: string, deviceId: string, roomId: string, members: Iterable<readonly [string, string]>): void {
    const k = key(userId, deviceId);
    let rooms = this.devices.get(k);
    if (rooms) this.devices.delete(k); // re-inserted last: the map's order is least recently used first
    rooms ??= new Map();
    this.devices.set(k, rooms);
    if (this.devices.size > MAX_DEVICES) this.devices.delete(this.devices.keys().next().value!);
    let room = rooms.get(roomId);
    if (!room) rooms.set(roomId, (room = new Map()));
    for (const [member, eventId] of members) room.set(member, eventId);
    if (room.size > MAX_MEMBERS_PER_ROOM) room.clear();
  }
}

function key(userId: string, deviceId: string): string {
  return `${userId}|${deviceId}`;
}
