import { randomBytes } from 'node:crypto';
import { tagSyncToken, untagSyncToken } from '../sync-token.js';

/** Devices whose sent members are remembered (least recently syncing dropped first). */
const MAX_DEVICES = 20_000;
/** Members remembered per room of a device; past this the room starts over (they are sent again: redundant, never missing). */
const MAX_MEMBERS_PER_ROOM = 2_000;

/** What a device was sent, as of the answer whose next_batch is `token`. */
export interface DeviceRecord {
  /** The (tagged) next_batch of the answer this record is as of: only a sync with this `since` may use it. */
  token: string;
  /** room -> member user -> the member event id sent. */
  rooms: Map<string, Map<string, string>>;
  /** A sync of the device is using the record (reads it now, adds to it when it answers). */
  busy: boolean;
  /** When the sync that wrote the record began (see LazyMembersCache.commit). */
  began: number;
}

/**
 * Which membership events each device was sent by a lazy-loading /sync (spec "Lazy-loading room
 * members": the server may skip "redundant membership events" the client already has, unless
 * include_redundant_members). Per process and in memory, as Synapse.
 *
 * A record holds only for the chain of answers that built it: it is as of one answer of this
 * process, and each such answer's next_batch carries a tag no other answer has (of this process
 * or another replica, before or after a restart). A sync trusts the record only when its `since`
 * is that exact token; any other sync (an initial one, one continuing a chain answered by another
 * replica, an older token) takes the device to know nothing: it sends the members again
 * (redundant, which the spec allows; never missing, which it does not) and starts a new record.
 */
export class LazyMembersCache {
  /** `user|device` -> record; the map's order is least recently answered first. */
  private readonly devices = new Map<string, DeviceRecord>();
  /** This process's part of the tags (random), then a count of its answers. */
  private readonly instance = randomBytes(5).readUIntBE(0, 5).toString(36).padStart(8, '0');
  private answers = 0;
  private begun = 0;

  /**
   * A lazy-loading sync of the device begins. It may use the device's record when `since` is the
   * token of the record and no other sync of the device is using it; else it starts from nothing.
   */
  begin(userId: string, deviceId: string, since: string | undefined): LazyMembersLease {
    const k = key(userId, deviceId);
    const record = since === undefined ? undefined : this.devices.get(k);
    const began = ++this.begun;
    if (record && !record.busy && record.token === since) {
      record.busy = true;
      return new LazyMembersLease(this, k, began, since, record);
    }
    return new LazyMembersLease(this, k, began, since, undefined);
  }

  /** The answer is sent: its members join the record, which becomes as of its (tagged) next_batch. */
  commit(k: string, began: number, base: DeviceRecord | undefined, members: Map<string, Map<string, string>>, nextBatch: string): string {
    const token = tagSyncToken(nextBatch, `${this.instance}${(++this.answers).toString(36)}`);
    const record: DeviceRecord = base ?? { token, rooms: new Map(), busy: false, began };
    for (const [roomId, sent] of members) {
      let room = record.rooms.get(roomId);
      if (!room) record.rooms.set(roomId, (room = new Map()));
      for (const [member, eventId] of sent) room.set(member, eventId);
      if (room.size > MAX_MEMBERS_PER_ROOM) room.clear();
    }
    record.token = token;
    record.busy = false;
    record.began = began;
    // Of concurrent syncs of the device, the one begun last is kept: a client that gave up a long
    // poll and asked again goes on from the later answer. (The other answer's token then finds
    // no record: its members are sent again.)
    const current = this.devices.get(k);
    if (current && current !== record && current.began > began) return token;
    this.devices.delete(k);
    this.devices.set(k, record);
    if (this.devices.size > MAX_DEVICES) this.devices.delete(this.devices.keys().next().value!);
    return token;
  }
}

/**
 * One lazy-loading sync's use of a device's record: what the device has (sent), what this
 * sync's answer gives it (remember), and, once that answer goes out, the record updated (commit).
 */
export class LazyMembersLease {
  /** The members of the pass being computed (a long poll may compute several; the last is answered). */
  private members = new Map<string, Map<string, string>>();
  private done = false;

  constructor(
    private readonly cache: LazyMembersCache,
    private readonly k: string,
    private readonly began: number,
    private readonly since: string | undefined,
    private readonly base: DeviceRecord | undefined,
  ) {}

  /** A new pass of the sync: what earlier passes computed is not answered. */
  newPass(): void {
    if (this.members.size > 0) this.members = new Map();
  }

  /** The member event ids the device has in this room (user -> event id); undefined when none are known. */
  sent(roomId: string): ReadonlyMap<string, string> | undefined {
    return this.base?.rooms.get(roomId);
  }

  /** Member events this pass's answer gives the device. */
  remember(roomId: string, members: Iterable<readonly [string, string]>): void {
    let room = this.members.get(roomId);
    if (!room) this.members.set(roomId, (room = new Map()));
    for (const [member, eventId] of members) room.set(member, eventId);
  }

  /** The answer with this (untagged) next_batch is sent: the record is updated; the token to send (tagged). */
  commit(nextBatch: string): string {
    this.done = true;
    // An answer that moved no position and gave no member (a long poll that timed out) leaves the
    // device as it was at `since`: it gets `since` back, and the record (if any) stays as of it.
    if (this.since !== undefined && this.members.size === 0 && untagSyncToken(this.since) === nextBatch) {
      if (this.base) this.base.busy = false;
      return this.since;
    }
    return this.cache.commit(this.k, this.began, this.base, this.members, nextBatch);
  }

  /** The sync ends without answering (an error): the record stays as it was, for the next sync. */
  release(): void {
    if (this.done) return;
    this.done = true;
    if (this.base) this.base.busy = false;
  }
}

function key(userId: string, deviceId: string): string {
  return `${userId}|${deviceId}`;
}
