import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import {
  getCurrentState, getCurrentStateEvent, getCurrentStateEvents, getEvents, getRoomMemberCounts, getRoomMembers, getRoomTimeline, getStateAfterEvent,
  type Db, type StateTriple, type StoredEvent, type UserMembership,
} from '@tessera/storage';
import { toStrippedState, type StrippedStateEvent } from '../rooms/client-event.js';
import { encodePaginationToken } from '../rooms/pagination-token.js';
import { RoomReads } from '../rooms/room-reads.js';
import { NotificationCounter } from '../sync/notification-counter.js';
import { hiddenByIgnore } from '../user-data/ignored-users.js';
import type { SentRoom } from './connection-store.js';
import { MEMBER, requiredStateDelta, wantsLazyMembers, wantsState } from './required-state.js';
import type { RoomConfig } from './sliding-sync-request.js';

type Json = Record<string, unknown>;

/** Stripped state given with invites and knocks (as /sync: the spec's recommended set). */
const STRIPPED_STATE_TYPES = ['m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.avatar', 'm.room.canonical_alias', 'm.room.encryption', 'm.room.topic'];
const MAX_HEROES = 5;

/** One room to send: who asks, the user's membership, the combined config, and what the connection was sent of it before. */
export interface RoomToSend {
  userId: string;
  deviceId: string;
  membership: UserMembership;
  /** The membership event (invites and knocks: carries the stripped state). */
  membershipEvent?: StoredEvent | null;
  config: RoomConfig;
  /** What was sent before; undefined, or `initial`, sends the room in full. */
  previous?: SentRoom;
  initial: boolean;
  /** The response's events position. */
  upTo: number;
  /** The request's events position: timeline events after it are live (num_live). */
  liveAfter?: number;
  isDm: boolean;
  /** The user's own read receipt moved since pos: count the room's notifications afresh. */
  receiptMoved: boolean;
  bumpStamp?: number;
  lists: string[];
  ignored: ReadonlySet<string>;
}

/**
 * A room of a sliding sync response (MSC4186 "Room results"), and the record of what it sent.
 * In full when `initial`, else only what changed since `previous`: the new timeline events,
 * the required state whose event differs from the one sent, and the fields whose value changed.
 */
@Injectable()
export class SlidingRoomData {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(RoomReads) private readonly reads: RoomReads,
    @Inject(NotificationCounter) private readonly counter: NotificationCounter,
  ) {}

  async build(room: RoomToSend): Promise<{ result: Json; sent: SentRoom }> {
    const { membership } = room;
    if (membership.membership === 'invite' || membership.membership === 'knock') return this.invited(room);
    return this.joinedOrLeft(room);
  }

  private async invited(room: RoomToSend): Promise<{ result: Json; sent: SentRoom }> {
    const { membership: m } = room;
    const stripped = await this.strippedState(m, room.membershipEvent);
    const result: Json = { initial: true, membership: m.membership, invite_state: stripped, stripped_state: stripped, bump_stamp: m.streamPos };
    if (room.isDm) result.is_dm = true;
    if (room.lists.length > 0) result.lists = room.lists;
    return { result, sent: { upTo: m.streamPos, membership: m.membership, config: room.config, state: new Map(), fields: { is_dm: JSON.stringify(room.isDm) } } };
  }

  private async joinedOrLeft(room: RoomToSend): Promise<{ result: Json; sent: SentRoom }> {
    const { userId, membership: m, config, previous, initial } = room;
    const roomId = m.roomId;
    const joined = m.membership === 'join';
    // A room the user left is shown as it was when they left.
    const roomUpTo = joined ? room.upTo : m.streamPos;

    // Timeline: the newest events after what was sent (all of them when initial), newest last.
    const limit = config.timelineLimit;
    const after = initial ? undefined : previous?.upTo;
    const fetched = await getRoomTimeline(this.db, roomId, { direction: 'b', from: roomUpTo + 1, to: after, limit: limit + 1 });
    const limited = fetched.length > limit;
    const chosen = fetched.slice(0, limit).reverse();
    const visible = (await this.reads.visibleEvents(userId, roomId, chosen)).filter((e) => !hiddenByIgnore(room.ignored, e));
    const first = chosen[0];
    const prevBatch = encodePaginationToken(first ? first.streamPos! - 1 : roomUpTo);

    // Required state, as of the room's position, with $LAZY meaning the timeline's senders (and members it shows).
    const lazyUsers = new Set<string>();
    if (wantsLazyMembers(config.requiredState)) {
      for (const e of visible) {
        lazyUsers.add(e.sender);
        if (e.type === MEMBER && e.stateKey !== null) lazyUsers.add(e.stateKey);
      }
    }
    const triples: StateTriple[] = joined ? await getCurrentState(this.db, roomId) : ((await getStateAfterEvent(this.db, m.eventId)) ?? []);
    const { state, send: toSend, removed } = requiredStateDelta(initial ? undefined : previous?.state, triples, (type, stateKey) =>
      wantsState(config.requiredState, type, stateKey, userId, lazyUsers),
    );
    const nameId = triples.find(([type, stateKey]) => type === 'm.room.name' && stateKey === '')?.[2];
    const avatarId = triples.find(([type, stateKey]) => type === 'm.room.avatar' && stateKey === '')?.[2];
    const found = await getEvents(this.db, [...toSend, ...(nameId ? [nameId] : []), ...(avatarId ? [avatarId] : [])]);
    const stateEvents = toSend.map((id) => found.get(id)).filter((e): e is StoredEvent => !!e);

    const requester = { userId, deviceId: room.deviceId };
    const [timelineOut, stateOut] = await Promise.all([this.reads.toClientEvents(visible, requester, true), this.reads.toClientEvents(stateEvents, requester)]);

    const result: Json = { membership: m.membership };
    if (initial) result.initial = true;
    if (room.lists.length > 0) result.lists = room.lists;
    result.required_state = removed.length > 0 ? [...stateOut, ...removed] : stateOut;
    result.timeline = timelineOut;
    result.limited = limited;
    result.prev_batch = prevBatch;
    result.num_live = room.liveAfter === undefined ? 0 : visible.filter((e) => e.streamPos! > room.liveAfter!).length;
    if (room.bumpStamp !== undefined) result.bump_stamp = room.bumpStamp;

    // Fields sent only when they changed (or in full when initial): name, avatar, heroes, is_dm.
    const name = nameId ? found.get(nameId)?.json.content?.name : undefined;
    const avatar = avatarId ? found.get(avatarId)?.json.content?.url : undefined;
    const fields: Json = {
      name: typeof name === 'string' && name !== '' ? name : null,
      avatar: typeof avatar === 'string' && avatar !== '' ? avatar : null,
      heroes: name ? null : await this.heroes(roomId, userId),
      is_dm: room.isDm,
    };
    const sentFields: Record<string, string> = {};
    for (const [field, value] of Object.entries(fields)) {
      sentFields[field] = JSON.stringify(value);
      const changed = initial || previous?.fields[field] !== sentFields[field];
      if (!changed) continue;
      // On an initial send an absent field means "not set"; later, null says it was removed.
      if (value === null || value === false) {
        if (!initial) result[field] = field === 'is_dm' ? false : null;
      } else result[field] = value;
    }

    // Counts: always sent with the room (cheap, and clients take them as they come).
    const counts = await getRoomMemberCounts(this.db, roomId);
    result.joined_count = counts.join ?? 0;
    result.invited_count = counts.invite ?? 0;
    if (joined) Object.assign(result, (await this.counter.counts(userId, roomId, room.upTo, room.receiptMoved)).total());

    return { result, sent: { upTo: roomUpTo, membership: m.membership, config, state, fields: sentFields } };
  }

  /** Up to 5 other members, joined then invited then (when none) left, as /sync's m.heroes, with their profile from the membership event. */
  private async heroes(roomId: string, userId: string): Promise<Json[]> {
    const [joined, invited] = await Promise.all([getRoomMembers(this.db, roomId, 'join'), getRoomMembers(this.db, roomId, 'invite')]);
    let ids = [...joined, ...invited].filter((u) => u !== userId).sort().slice(0, MAX_HEROES);
    if (ids.length === 0) ids = (await getRoomMembers(this.db, roomId, 'leave')).filter((u) => u !== userId).sort().slice(0, MAX_HEROES);
    const members = await Promise.all(ids.map((u) => getCurrentStateEvent(this.db, roomId, MEMBER, u)));
    return ids.map((u, i) => {
      const content = (members[i]?.json.content ?? {}) as Json;
      const hero: Json = { user_id: u };
      if (typeof content.displayname === 'string') hero.displayname = content.displayname;
      if (typeof content.avatar_url === 'string') hero.avatar_url = content.avatar_url;
      return hero;
    });
  }

  /** Stripped state of an invite or knock: what a remote server sent with it, else the room's current state here; with the membership event itself. */
  private async strippedState(m: UserMembership, own: StoredEvent | null | undefined): Promise<StrippedStateEvent[]> {
    own ??= (await getEvents(this.db, [m.eventId])).get(m.eventId) ?? null;
    const unsigned = own?.json.unsigned as Json | undefined;
    const carried = unsigned?.invite_room_state ?? unsigned?.knock_room_state;
    const events: StrippedStateEvent[] = Array.isArray(carried) ? [...(carried as StrippedStateEvent[])] : [];
    if (events.length === 0) {
      for (const e of await getCurrentStateEvents(this.db, m.roomId, STRIPPED_STATE_TYPES)) if (e.stateKey === '') events.push(toStrippedState(e));
    }
    if (own) events.push(toStrippedState(own));
    return events;
  }
}
