import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import {
  getCurrentStateEvents, getEvent, getEvents, getRoom, getRoomTimeline, getStateAfterEvent, getUserMembershipInRoom,
  getUserMemberships, type Db, type StoredEvent,
} from '@tessera/storage';
import { directoryStore } from '../directory/directory.store.js';
import { MatrixError, forbidden, invalidParam, notFound } from '../errors.js';
import { BundledAggregations } from '../relations/bundled-aggregations.js';
import type { ClientEvent } from './client-event.js';
import { eventPasses, filterLimit, type RoomEventFilter } from './event-filter.js';
import { decodePaginationToken, encodePaginationToken } from './pagination-token.js';
import { hiddenByIgnore, IgnoredUsers } from '../user-data/ignored-users.js';
import { RoomBackfill } from './room-backfill.js';
import { RoomReads } from './room-reads.js';

const MAX_MESSAGES_LIMIT = 1000;
/** Rounds of fetching when filters or history visibility drop events, before answering with fewer. */
const MAX_FETCH_ROUNDS = 10;

export interface Viewer {
  userId: string;
  deviceId: string;
}

/** Which state of the room a user may read: the current one, or the one when they left. */
type StateView = { kind: 'current' } | { kind: 'at'; eventId: string };

/** Reads of a room's history and state, with history visibility applied (spec "Room history visibility"). */
@Injectable()
export class RoomHistoryService {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(RoomReads) private readonly reads: RoomReads,
    @Inject(BundledAggregations) private readonly aggregations: BundledAggregations,
    @Inject(RoomBackfill) private readonly backfill: RoomBackfill,
    @Inject(IgnoredUsers) private readonly ignoredUsers: IgnoredUsers,
  ) {}

  /**
   * Members read the current state; former members the state when they left (as Synapse);
   * anyone a world_readable room's current state. Others: 403.
   */
  private async stateView(userId: string, roomId: string): Promise<StateView> {
    if (!(await getRoom(this.db, roomId))) throw forbidden(`You are not a member of ${roomId}`);
    const membership = await getUserMembershipInRoom(this.db, roomId, userId);
    if (membership?.membership === 'join') return { kind: 'current' };
    if (await this.isWorldReadable(roomId)) return { kind: 'current' };
    if (membership && (membership.membership === 'leave' || membership.membership === 'ban')) return { kind: 'at', eventId: membership.eventId };
    throw forbidden(`You are not a member of ${roomId}`);
  }

  private async isWorldReadable(roomId: string): Promise<boolean> {
    const [hv] = await getCurrentStateEvents(this.db, roomId, ['m.room.history_visibility']);
    return hv?.json.content?.history_visibility === 'world_readable';
  }

  private async stateEvents(view: StateView, roomId: string): Promise<StoredEvent[]> {
    if (view.kind === 'current') return getCurrentStateEvents(this.db, roomId);
    const triples = (await getStateAfterEvent(this.db, view.eventId)) ?? [];
    const events = await getEvents(this.db, triples.map(([, , id]) => id));
    return triples.map(([, , id]) => events.get(id)).filter((e): e is StoredEvent => !!e);
  }

  async state(viewer: Viewer, roomId: string): Promise<ClientEvent[]> {
    const view = await this.stateView(viewer.userId, roomId);
    return this.reads.toClientEvents(await this.stateEvents(view, roomId), viewer);
  }

  async stateEvent(viewer: Viewer, roomId: string, type: string, stateKey: string, format: string | undefined): Promise<unknown> {
    if (format !== undefined && format !== 'content' && format !== 'event') throw invalidParam('"format" must be "content" or "event"');
    const view = await this.stateView(viewer.userId, roomId);
    const event = (await this.stateEvents(view, roomId)).find((e) => e.type === type && e.stateKey === stateKey);
    if (!event) throw notFound(`The room has no state event of type ${type} and state key ${JSON.stringify(stateKey)}`);
    if (format === 'event') return (await this.reads.toClientEvents([event], viewer, true))[0];
    return event.json.content ?? {};
  }

  /** GET /rooms/{roomId}/event/{eventId}: 404 for an event unknown here or not visible to the user. */
  async event(viewer: Viewer, roomId: string, eventId: string): Promise<ClientEvent> {
    const event = await getEvent(this.db, eventId);
    // A backfilled event is an outlier with a stream position: part of the timeline.
    if (!event || event.roomId !== roomId || event.rejectedReason !== null || event.streamPos === null) {
      throw notFound(`Event ${eventId} not found in ${roomId}`);
    }
    const [visible] = await this.reads.visibleEvents(viewer.userId, roomId, [event]);
    if (!visible) throw notFound(`Event ${eventId} not found in ${roomId}`);
    const formatted = await this.reads.toClientEvents([event], viewer, true);
    await this.aggregations.bundle(viewer, roomId, [event], formatted);
    return formatted[0]!;
  }

  /** GET /rooms/{roomId}/members with at, membership and not_membership. */
  async members(viewer: Viewer, roomId: string, query: { at?: string; membership?: string; notMembership?: string }): Promise<{ chunk: ClientEvent[] }> {
    const memberships = ['join', 'invite', 'knock', 'leave', 'ban'];
    for (const [name, value] of [['membership', query.membership], ['not_membership', query.notMembership]] as const) {
      if (value !== undefined && !memberships.includes(value)) throw invalidParam(`"${name}" must be one of ${memberships.join(', ')}`);
    }
    let view = await this.stateView(viewer.userId, roomId);
    if (query.at !== undefined) {
      const position = decodePaginationToken(query.at, 'at');
      const [last] = await getRoomTimeline(this.db, roomId, { direction: 'b', from: position + 1, limit: 1 });
      if (last) {
        // Never later than what the user may see (their leave).
        if (view.kind === 'current' || (await this.positionOf(view.eventId)) >= (last.streamPos ?? 0)) view = { kind: 'at', eventId: last.eventId };
      }
    }
    const members = (await this.stateEvents(view, roomId)).filter((e) => {
      if (e.type !== 'm.room.member') return false;
      const m = e.json.content?.membership;
      if (query.membership !== undefined && m !== query.membership) return false;
      if (query.notMembership !== undefined && m === query.notMembership) return false;
      return true;
    });
    return { chunk: await this.reads.toClientEvents(members, viewer) };
  }

  private async positionOf(eventId: string): Promise<number> {
    return (await getEvent(this.db, eventId))?.streamPos ?? 0;
  }

  /** GET /rooms/{roomId}/joined_members: members only (or anyone in a world_readable room). */
  async joinedMembers(userId: string, roomId: string): Promise<{ joined: Record<string, { display_name?: string; avatar_url?: string }> }> {
    const view = await this.stateView(userId, roomId);
    if (view.kind !== 'current') throw forbidden(`You are not a member of ${roomId}`);
    const joined: Record<string, { display_name?: string; avatar_url?: string }> = {};
    for (const e of await getCurrentStateEvents(this.db, roomId, ['m.room.member'])) {
      const content = (e.json.content ?? {}) as Record<string, unknown>;
      if (content.membership !== 'join' || e.stateKey === null) continue;
      const entry: { display_name?: string; avatar_url?: string } = {};
      if (typeof content.displayname === 'string') entry.display_name = content.displayname;
      if (typeof content.avatar_url === 'string') entry.avatar_url = content.avatar_url;
      joined[e.stateKey] = entry;
    }
    return { joined };
  }

  async joinedRooms(userId: string): Promise<{ joined_rooms: string[] }> {
    return { joined_rooms: (await getUserMemberships(this.db, userId, ['join'])).map((m) => m.roomId) };
  }

  /** Whether the user may page through this room's history at all. */
  private async requireHistoryAccess(userId: string, roomId: string): Promise<void> {
    if (!(await getRoom(this.db, roomId))) throw forbidden(`You are not a member of ${roomId}`);
    const membership = await getUserMembershipInRoom(this.db, roomId, userId);
    // A room the user forgot is no longer theirs to read (as Synapse), unless anyone may.
    if (membership && !(await directoryStore.isForgotten(this.db, userId, roomId, membership.streamPos))) return;
    if (await this.isWorldReadable(roomId)) return;
    throw forbidden(`You are not a member of ${roomId}`);
  }

  /**
   * Pages of a room's timeline in stream order, filtered (the events of users the requester
   * ignores left out, but state events) and with history visibility applied.
   * Returns the events and the position after the last one looked at (null when none is left);
   * `cursor` is that position even when none is left (where a backfill continues from).
   */
  async page(
    userId: string,
    roomId: string,
    q: { dir: 'b' | 'f'; from: number; to?: number; limit: number; filter?: RoomEventFilter },
  ): Promise<{ events: StoredEvent[]; next: number | null; cursor: number }> {
    const events: StoredEvent[] = [];
    const ignored = await this.ignoredUsers.of(userId);
    let cursor = q.from;
    for (let round = 0; round < MAX_FETCH_ROUNDS && events.length < q.limit; round++) {
      const want = q.limit - events.length;
      const batch = await getRoomTimeline(this.db, roomId, {
        direction: q.dir,
        from: q.dir === 'b' ? cursor + 1 : cursor,
        to: q.to,
        limit: want,
      });
      if (batch.length === 0) return { events, next: null, cursor };
      const last = batch[batch.length - 1]!.streamPos!;
      cursor = q.dir === 'b' ? last - 1 : last;
      const passing = batch.filter((e) => eventPasses(q.filter, { type: e.type, sender: e.sender, content: e.json.content }) && !hiddenByIgnore(ignored, e));
      events.push(...(await this.reads.visibleEvents(userId, roomId, passing)));
      if (batch.length < want) return { events, next: null, cursor };
    }
    return { events, next: cursor, cursor };
  }

  /**
   * A backwards page that reached the start of what is held here, short of its limit: when the
   * room's earliest events cite events not held (it was joined over federation), its earlier
   * history is backfilled from another server in the room and the page continues into it.
   * With something backfilled the page keeps an `end` even when still short: more may be
   * fetched by the next request, which ends the history when a backfill finds nothing.
   */
  private async pageWithBackfill(
    userId: string,
    roomId: string,
    q: { from: number; limit: number; filter?: RoomEventFilter },
  ): Promise<{ events: StoredEvent[]; next: number | null }> {
    const first = await this.page(userId, roomId, { dir: 'b', from: q.from, limit: q.limit, filter: q.filter });
    if (first.next !== null || first.events.length >= q.limit) return first;
    const remaining = q.limit - first.events.length;
    const stored = await this.backfill.backfill(roomId, Math.min(100, Math.max(2 * remaining, 50)));
    if (stored === 0) return first;
    const more = await this.page(userId, roomId, { dir: 'b', from: first.cursor, limit: remaining, filter: q.filter });
    return { events: [...first.events, ...more.events], next: more.next ?? more.cursor };
  }

  /** GET /rooms/{roomId}/messages. */
  async messages(
    viewer: Viewer,
    roomId: string,
    q: { from?: string; to?: string; dir?: string; limit?: number; filter?: RoomEventFilter },
  ): Promise<Record<string, unknown>> {
    // Access first: a user who may not read the room is told so whatever the parameters (as
    // Synapse, which defaults "dir"; Complement's forgotten-room test asks without it).
    await this.requireHistoryAccess(viewer.userId, roomId);
    if (q.dir === undefined) throw new MatrixError(400, 'M_MISSING_PARAM', 'missing "dir" (b or f)');
    if (q.dir !== 'b' && q.dir !== 'f') throw invalidParam('"dir" must be "b" or "f"');
    const limit = q.limit === undefined ? filterLimit(q.filter, 10, MAX_MESSAGES_LIMIT) : q.limit;
    if (!Number.isInteger(limit) || limit < 0) throw invalidParam('"limit" must be a non-negative integer');
    const from = q.from !== undefined ? decodePaginationToken(q.from, 'from') : q.dir === 'b' ? Number.MAX_SAFE_INTEGER - 1 : 0;
    const to = q.to !== undefined ? decodePaginationToken(q.to, 'to') : undefined;
    const capped = Math.min(limit, MAX_MESSAGES_LIMIT);
    const { events, next } = limit === 0
      ? { events: [], next: from }
      : q.dir === 'b' && to === undefined
        ? await this.pageWithBackfill(viewer.userId, roomId, { from, limit: capped, filter: q.filter })
        : await this.page(viewer.userId, roomId, { dir: q.dir, from, to, limit: capped, filter: q.filter });
    const result: Record<string, unknown> = {
      start: q.from ?? encodePaginationToken(from === Number.MAX_SAFE_INTEGER - 1 ? (events[0]?.streamPos ?? 0) : from),
      chunk: await this.reads.toClientEvents(events, viewer, true),
    };
    await this.aggregations.bundle(viewer, roomId, events, result.chunk as ClientEvent[]);
    if (next !== null) result.end = encodePaginationToken(next);
    if (q.filter?.lazy_load_members) result.state = await this.memberStateFor(viewer, events);
    return result;
  }

  /** GET /rooms/{roomId}/context/{eventId}. */
  async context(viewer: Viewer, roomId: string, eventId: string, q: { limit: number; filter?: RoomEventFilter }): Promise<Record<string, unknown>> {
    if (!Number.isInteger(q.limit) || q.limit < 0) throw invalidParam('"limit" must be a non-negative integer');
    const event = await getEvent(this.db, eventId);
    if (!event || event.roomId !== roomId || event.streamPos === null) throw notFound(`Event ${eventId} not found in ${roomId}`);
    await this.requireHistoryAccess(viewer.userId, roomId);
    if ((await this.reads.visibleEvents(viewer.userId, roomId, [event])).length === 0) throw notFound(`Event ${eventId} not found in ${roomId}`);
    const limit = Math.min(q.limit, MAX_MESSAGES_LIMIT);
    const beforeLimit = Math.floor(limit / 2);
    const afterLimit = limit - beforeLimit;
    const before = beforeLimit > 0 ? await this.page(viewer.userId, roomId, { dir: 'b', from: event.streamPos - 1, limit: beforeLimit, filter: q.filter }) : { events: [], next: event.streamPos - 1 };
    const after = afterLimit > 0 ? await this.page(viewer.userId, roomId, { dir: 'f', from: event.streamPos, limit: afterLimit, filter: q.filter }) : { events: [], next: event.streamPos };
    const lastShown = after.events[after.events.length - 1] ?? event;
    const stateTriples = (await getStateAfterEvent(this.db, lastShown.eventId)) ?? [];
    const shown = [...before.events, event, ...after.events];
    const senders = new Set(shown.map((e) => e.sender));
    const lazy = q.filter?.lazy_load_members === true;
    const wanted = stateTriples.filter(([type, key]) => !lazy || type !== 'm.room.member' || senders.has(key) || key === viewer.userId);
    const stateEvents = await getEvents(this.db, wanted.map(([, , id]) => id));
    const state = wanted.map(([, , id]) => stateEvents.get(id)).filter((e): e is StoredEvent => !!e);
    return {
      start: encodePaginationToken(before.next ?? (before.events[before.events.length - 1]?.streamPos ?? event.streamPos) - 1),
      end: encodePaginationToken(after.next ?? lastShown.streamPos ?? event.streamPos),
      events_before: await this.reads.toClientEvents(before.events, viewer, true),
      event: (await this.reads.toClientEvents([event], viewer, true))[0],
      events_after: await this.reads.toClientEvents(after.events, viewer, true),
      state: await this.reads.toClientEvents(state, viewer),
    };
  }

  /**
   * Lazy-loaded members: the membership events of the senders of `events` (the requester's own
   * among them), as they were at the chunk's first event (as Synapse). Nothing is remembered
   * between calls, so include_redundant_members changes nothing here (the spec lets a server
   * send redundant members).
   */
  private async memberStateFor(viewer: Viewer, events: StoredEvent[]): Promise<ClientEvent[]> {
    const senders = new Set(events.map((e) => e.sender));
    if (senders.size === 0) return [];
    const state = (await getStateAfterEvent(this.db, events[0]!.eventId)) ?? [];
    const ids = state.filter(([type, key]) => type === 'm.room.member' && senders.has(key)).map(([, , id]) => id);
    const found = await getEvents(this.db, ids);
    return this.reads.toClientEvents(ids.map((id) => found.get(id)).filter((e): e is StoredEvent => !!e), viewer);
  }
}
