import { Global, Inject, Injectable, Module } from '@nestjs/common';
import { DB } from '@tessera/http';
import {
  getClientTxnIds, getEarliestHeldStateNid, getEvents, getSnapshotEntries, getUserMembershipHistory, getUserMembershipInRoom, getUsersSharingRooms, isEventInRoom,
  type Db, type StoredEvent,
} from '@tessera/storage';
import { ROOM_MEMBERSHIP, type RoomMembership } from '../room-membership.js';
import { toClientEvent, type ClientEvent } from './client-event.js';

const HISTORY_VISIBILITY = 'm.room.history_visibility';
const MEMBER = 'm.room.member';
const KEY_SEP = '\u0000';

/** Visibility values from the most to the least open (a change is judged by the more open one). */
const OPENNESS = ['world_readable', 'shared', 'invited', 'joined'];

/**
 * Reads of rooms for the Client-Server API: memberships, history visibility, and events in
 * the client format. Also the ROOM_MEMBERSHIP the typing/receipts code asks.
 */
@Injectable()
export class RoomReads implements RoomMembership {
  constructor(@Inject(DB) readonly db: Db) {}

  async membership(roomId: string, userId: string): Promise<string | undefined> {
    return (await getUserMembershipInRoom(this.db, roomId, userId))?.membership;
  }

  async isJoined(roomId: string, userId: string): Promise<boolean> {
    return (await this.membership(roomId, userId)) === 'join';
  }

  eventInRoom(roomId: string, eventId: string): Promise<boolean> {
    return isEventInRoom(this.db, roomId, eventId);
  }

  usersSharingRoomsWith(userId: string): Promise<string[]> {
    return getUsersSharingRooms(this.db, userId);
  }

  /**
   * The events of one room the user may see, per the spec's history visibility algorithm
   * ("Room history visibility"): world_readable at the event; joined at the event; shared at
   * the event and joined at any point after it; invited at the event with history invited.
   * The user's own membership events are always visible to them, and a change of
   * history visibility by the more open of the old and new setting (as Synapse does).
   */
  async visibleEvents(userId: string, roomId: string, events: StoredEvent[]): Promise<StoredEvent[]> {
    if (events.length === 0) return [];
    const history = await getUserMembershipHistory(this.db, roomId, userId);
    const joins = history.filter((h) => h.membership === 'join').map((h) => h.streamPos);
    const lastJoinPos = joins.length > 0 ? Math.max(...joins) : Number.NEGATIVE_INFINITY;
    // Backfilled events (outliers given a place in the timeline, libs/storage/src/event-log/backfill.ts)
    // have no state of their own here: they are judged by the state at the earliest event whose
    // state is held (for a room joined over federation, the state before the join). The history
    // visibility and the user's membership in force before that event are not known here; this
    // is the nearest state we hold, and the one a server that joined then was told.
    const backfilled = events.some((e) => e.outlier && e.streamPos !== null);
    const fallbackNid = backfilled ? await getEarliestHeldStateNid(this.db, roomId) : null;
    const stateNidOf = (e: StoredEvent) => (e.outlier && e.streamPos !== null ? fallbackNid : e.stateBeforeNid);
    const bySnapshot = new Map<number | null, Map<string, string>>();
    for (const e of events) {
      if (!bySnapshot.has(stateNidOf(e))) bySnapshot.set(stateNidOf(e), new Map());
    }
    await Promise.all(
      [...bySnapshot.keys()].map(async (nid) => {
        bySnapshot.set(nid, await getSnapshotEntries(this.db, nid, [[HISTORY_VISIBILITY, ''], [MEMBER, userId]]));
      }),
    );
    const cited = new Set<string>();
    for (const entries of bySnapshot.values()) for (const id of entries.values()) cited.add(id);
    const stateEvents = await getEvents(this.db, [...cited]);
    const contentOf = (id: string | undefined) => (id ? (stateEvents.get(id)?.json.content ?? {}) : {}) as Record<string, unknown>;

    return events.filter((e) => {
      const entries = bySnapshot.get(stateNidOf(e))!;
      let visibility = String(contentOf(entries.get(`${HISTORY_VISIBILITY}${KEY_SEP}`)).history_visibility ?? 'shared');
      if (!OPENNESS.includes(visibility)) visibility = 'shared';
      if (e.type === HISTORY_VISIBILITY && e.stateKey === '') {
        const next = String(e.json.content?.history_visibility ?? 'shared');
        if (OPENNESS.includes(next) && OPENNESS.indexOf(next) < OPENNESS.indexOf(visibility)) visibility = next;
      }
      // A user always sees their own membership events (their invite, join, leave, kick or ban).
      if (e.type === MEMBER && e.stateKey === userId) return true;
      const membership = String(contentOf(entries.get(`${MEMBER}${KEY_SEP}${userId}`)).membership ?? 'leave');
      if (visibility === 'world_readable') return true;
      if (membership === 'join') return true;
      if (visibility === 'shared' && e.streamPos !== null && lastJoinPos >= e.streamPos) return true;
      if (visibility === 'invited' && membership === 'invite') return true;
      return false;
    });
  }

  /** Events as ClientEvents for one device: its transaction ids, and what redacted them. */
  /**
   * Events in the client format. `timeline`: they are shown as timeline events (sync
   * timelines, /messages, /event, /context), whose state events carry what they replaced
   * (unsigned.prev_content, prev_sender, replaces_state); lists of current state do not.
   */
  async toClientEvents(events: StoredEvent[], requester?: { userId: string; deviceId: string }, timeline = false): Promise<ClientEvent[]> {
    if (events.length === 0) return [];
    const own = requester ? events.filter((e) => e.sender === requester.userId).map((e) => e.eventId) : [];
    const redactionIds = events.map((e) => e.redactedBy).filter((id): id is string => !!id);
    const [txnIds, redactions, replaced, membership] = await Promise.all([
      requester && own.length > 0 ? getClientTxnIds(this.db, requester.userId, requester.deviceId, own) : Promise.resolve(new Map<string, string>()),
      getEvents(this.db, redactionIds),
      timeline ? this.replacedState(events) : undefined,
      timeline && requester ? this.membershipAt(requester.userId, events) : undefined,
    ]);
    const now = Date.now();
    return events.map((e) => toClientEvent(e, { txnIds, redactions, replaced, membership, now }));
  }

  /**
   * unsigned.membership of timeline events (spec v1.11, MSC4115): the user's membership at each
   * event, the event's own change included; "leave" before they ever had one. Told by the
   * user's membership events in the room's stream order (one read per room), the order the
   * timeline is served in. Events without a stream position are left without it (the spec:
   * omitted where it cannot be told).
   */
  async membershipAt(userId: string, events: readonly StoredEvent[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const rooms = new Set(events.filter((e) => e.streamPos !== null).map((e) => e.roomId));
    await Promise.all(
      [...rooms].map(async (roomId) => {
        const history = await getUserMembershipHistory(this.db, roomId, userId);
        for (const e of events) {
          if (e.roomId !== roomId || e.streamPos === null) continue;
          let membership = 'leave';
          for (const h of history) {
            if (h.streamPos > e.streamPos) break;
            membership = h.membership;
          }
          out.set(e.eventId, membership);
        }
      }),
    );
    return out;
  }

  /** For each state event, the state event of the same type and state key in the state before it. */
  async replacedState(events: readonly StoredEvent[]): Promise<Map<string, StoredEvent>> {
    const state = events.filter((e) => e.stateKey !== null && e.stateBeforeNid !== null);
    if (state.length === 0) return new Map();
    const before = await Promise.all(state.map((e) => getSnapshotEntries(this.db, e.stateBeforeNid, [[e.type, e.stateKey!]])));
    const previousIds = state.map((e, i) => before[i]!.get(`${e.type}${KEY_SEP}${e.stateKey}`));
    const found = await getEvents(this.db, previousIds.filter((id): id is string => !!id));
    const out = new Map<string, StoredEvent>();
    state.forEach((e, i) => {
      const previous = previousIds[i] && found.get(previousIds[i]!);
      if (previous) out.set(e.eventId, previous);
    });
    return out;
  }
}

/**
 * Global so that the typing and receipts services (which take ROOM_MEMBERSHIP as optional)
 * see it wherever they are declared.
 */
@Global()
@Module({
  providers: [RoomReads, { provide: ROOM_MEMBERSHIP, useExisting: RoomReads }],
  exports: [RoomReads, ROOM_MEMBERSHIP],
})
export class RoomReadsModule {}
