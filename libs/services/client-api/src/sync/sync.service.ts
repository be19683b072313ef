import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import {
  getCurrentStateEvents, getCurrentStreamPosition, getEvent, getEvents, getLastRoomEventAtOrBefore, getRoomMembers,
  getRoomsWithEventsBetween, getRoomTimeline, getStateAfterEvent, getStateBeforeEvent, getUserMembershipHistory, getUserMemberships,
  getUsersSharingRooms, type Db, type StateTriple, type StoredEvent, type UserMembership,
} from '@tessera/storage';
import { directoryStore } from '../directory/directory.store.js';
import { KeysService } from '../e2ee/keys.service.js';
import { ToDeviceService } from '../e2ee/to-device.service.js';
import { PresenceService, type PresenceEvent } from '../ephemeral/presence.service.js';
import { TypingService } from '../ephemeral/typing.service.js';
import { invalidParam } from '../errors.js';
import type { ClientEvent } from '../rooms/client-event.js';
import { toClientEvent, toStrippedState, type StrippedStateEvent } from '../rooms/client-event.js';
import { eventPasses, filterLimit, isSelective, onlyFields, roomPasses, type RoomEventFilter, type SyncFilter } from '../rooms/event-filter.js';
import { encodePaginationToken } from '../rooms/pagination-token.js';
import { RoomReads } from '../rooms/room-reads.js';
import { decodeSyncToken, encodeSyncToken, SYNC_STREAMS, type SyncPositions } from '../sync-token.js';
import { AccountDataService, type AccountDataEvent } from '../user-data/account-data.service.js';
import { hiddenByIgnore, IgnoredUsers } from '../user-data/ignored-users.js';
import { ReceiptsService, type ReceiptContent } from '../user-data/receipts.service.js';
import { LazyMembersCache, type LazyMembersLease } from './lazy-members-cache.js';
import { SyncNotifier } from './sync-notifier.js';
import { usersNoLongerSharing } from './device-lists-left.js';
import { NotificationCounter } from './notification-counter.js';

const DEFAULT_TIMELINE_LIMIT = 10;
const MAX_TIMELINE_LIMIT = 100;
/** A timeline filter that drops events: how many more events one look further back reads, and how many looks at most. */
const FILTERED_BATCH = 100;
const MAX_FILTERED_ROUNDS = 5;
/** Stripped state given to invited and knocking users (spec "Stripped state", the recommended set). */
const STRIPPED_STATE_TYPES = ['m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.avatar', 'm.room.canonical_alias', 'm.room.encryption', 'm.room.topic'];

export interface SyncRequest {
  userId: string;
  deviceId: string;
  since?: string;
  filter: SyncFilter;
  fullState: boolean;
  timeoutMs: number;
  /** use_state_after: rooms carry `state_after` (the state at the end of the timeline) instead of `state`. */
  useStateAfter?: boolean;
}

type Json = Record<string, unknown>;

/** A request being answered, with its use of the device's lazy-loaded members (lazy-loading syncs without include_redundant_members). */
interface SyncCall extends SyncRequest {
  lazy?: LazyMembersLease;
  /** The users the requester ignores (m.ignored_user_list), as of this response. */
  ignored?: ReadonlySet<string>;
}

interface Window {
  since?: SyncPositions;
  /** The positions this response reaches; next_batch. */
  upTo: SyncPositions;
}

interface JoinedRoomPlan {
  roomId: string;
  /** Events after this position go in the timeline; undefined: the latest ones (initial sync, newly joined). */
  timelineAfter?: number;
  /** State up to the timeline in full (initial, newly joined, full_state), else only what changed since `timelineAfter`. */
  fullState: boolean;
  /** The user was joined for the whole window: every timeline event is visible. */
  joinedThroughout: boolean;
}

/**
 * /sync (spec "Syncing"): initial and incremental, built from the event log's read models and
 * client-api's other streams, with a long poll driven by SyncNotifier.
 */
@Injectable()
export class SyncService {
  /** The read of the stream position in flight, and the one queued after it (see currentPosition). */
  private positionRead: Promise<number> | undefined;
  private nextPositionRead: Promise<number> | undefined;
  /** The members each device was sent by lazy-loading syncs (redundant ones are not sent again). */
  private readonly lazyMembers = new LazyMembersCache();

  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(RoomReads) private readonly reads: RoomReads,
    @Inject(SyncNotifier) private readonly notifier: SyncNotifier,
    @Inject(AccountDataService) private readonly accountData: AccountDataService,
    @Inject(ToDeviceService) private readonly toDevice: ToDeviceService,
    @Inject(KeysService) private readonly keys: KeysService,
    @Inject(ReceiptsService) private readonly receipts: ReceiptsService,
    @Inject(TypingService) private readonly typing: TypingService,
    @Inject(PresenceService) private readonly presence: PresenceService,
    @Inject(NotificationCounter) private readonly counter: NotificationCounter,
    @Inject(IgnoredUsers) private readonly ignoredUsers: IgnoredUsers,
  ) {}

  async sync(req: SyncRequest): Promise<Json> {
    let since: SyncPositions | undefined;
    if (req.since !== undefined) {
      since = decodeSyncToken(req.since);
      if (!since) throw invalidParam(`"since" ${JSON.stringify(req.since)} is not a sync token from this server`);
    }
    // Redundant members are skipped only on a chain of answers of this process (see LazyMembersCache):
    // the answer's next_batch is tagged, and the members it gives are remembered once it is answered.
    const state = req.filter.room?.state;
    const lazy = state?.lazy_load_members && !state.include_redundant_members ? this.lazyMembers.begin(req.userId, req.deviceId, req.since) : undefined;
    try {
      const response = await this.answer({ ...req, lazy }, since);
      if (lazy) response.next_batch = lazy.commit(response.next_batch as string);
      return response;
    } finally {
      lazy?.release();
    }
  }

  private async answer(req: SyncCall, since: SyncPositions | undefined): Promise<Json> {
    const deadline = Date.now() + Math.max(0, req.timeoutMs);
    // A token from another replica (or from before a restart) may be ahead of what we heard of.
    if (since && SYNC_STREAMS.some((s) => since![s] > this.notifier.positions()[s])) await this.notifier.refreshKnown();
    // A sync that answers at once reads the log's position, so it sees what its client just
    // wrote even if the notification is still on its way. A long poll needs no read: that
    // notification wakes it.
    if (!since || req.timeoutMs <= 0) this.notifier.observe('events', await this.currentPosition());
    for (let first = true; ; first = false) {
      // The poll a client sends right after a response finds its token current: nothing to
      // compute, it waits at once (with 500 pollers of a room, each event cost 500 empty
      // answers computed besides the 500 real ones).
      const idle = first && since && req.timeoutMs > 0 && !req.fullState ? await this.joinedRoomsIfNothingMoved(req.userId, since) : undefined;
      let joinedRooms: string[];
      let used: SyncPositions;
      if (idle) {
        joinedRooms = idle;
        used = since!;
      } else {
        const pass = await this.compute(req, since);
        const remaining = deadline - Date.now();
        if (pass.hasNews || !since || req.fullState || remaining <= 0) return pass.response;
        joinedRooms = pass.joinedRooms;
        used = decodeSyncToken(pass.response.next_batch as string)!;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) return (await this.compute(req, since)).response;
      // Nothing new: wait for a notification about this user or their rooms, then look again.
      const wait = this.notifier.waitFor(req.userId, joinedRooms, remaining);
      const known = this.notifier.positions();
      if (SYNC_STREAMS.some((s) => known[s] > used[s])) wait.cancel();
      const woken = await wait.promise;
      if (!woken && Date.now() >= deadline) {
        return (await this.compute(req, since)).response;
      }
    }
  }

  /**
   * The user's joined rooms when no stream has moved past the token and the in-memory copy
   * vouches that none of their memberships changed after it: then compute() would find
   * nothing to send. Undefined when that is not certain (compute decides).
   */
  private async joinedRoomsIfNothingMoved(userId: string, since: SyncPositions): Promise<string[] | undefined> {
    const known = this.notifier.positions();
    if (SYNC_STREAMS.some((s) => known[s] > since[s])) return undefined;
    const recent = this.notifier.recent;
    if (!recent.isCurrentAt(known.events)) return undefined;
    const memberships = await recent.membershipsOf(userId);
    if (!memberships || memberships.some((m) => m.streamPos > since.events)) return undefined;
    return memberships.filter((m) => m.membership === 'join').map((m) => m.roomId);
  }

  /**
   * The log's stream position, read after this call began (so a sync sees what its client
   * wrote before asking). Concurrent callers share reads: while one is in flight, the next
   * callers share the one queued after it, so 500 syncs arriving at once cost two queries.
   */
  private currentPosition(): Promise<number> {
    if (!this.positionRead) {
      this.positionRead = getCurrentStreamPosition(this.db).finally(() => {
        this.positionRead = this.nextPositionRead;
        this.nextPositionRead = undefined;
      });
      return this.positionRead;
    }
    this.nextPositionRead ??= this.positionRead.catch(() => undefined).then(() => getCurrentStreamPosition(this.db));
    return this.nextPositionRead;
  }

  /** One pass: the response from `since` to the positions known now. */
  private async compute(req: SyncCall, since: SyncPositions | undefined): Promise<{ response: Json; hasNews: boolean; joinedRooms: string[] }> {
    const { userId, deviceId, filter } = req;
    req.lazy?.newPass();
    const known = this.notifier.positions();
    const upTo: SyncPositions = { ...known };
    const recent = this.notifier.recent;
    // The cached memberships are those as of the last notification: usable when nothing newer is known.
    const memberships = (recent.isCurrentAt(upTo.events) ? await recent.membershipsOf(userId) : undefined) ?? (await getUserMemberships(this.db, userId));
    // Memberships committed after the position we read: everything up to them is committed too.
    for (const m of memberships) if (m.streamPos > upTo.events) upTo.events = m.streamPos;
    const window: Window = { since, upTo };
    const roomFilter = filter.room;
    const inScope = (roomId: string) => roomPasses(roomFilter, roomId);
    const joinedNow = memberships.filter((m) => m.membership === 'join').map((m) => m.roomId);

    // Streams other than events: ask a store only when it has moved past the token.
    const moved = (s: keyof SyncPositions) => !since || known[s] > since[s];
    const [accountData, toDevice, deviceLists, receipts, typing] = await Promise.all([
      moved('account_data') ? this.accountData.getAccountDataSince(userId, since?.account_data ?? 0) : undefined,
      moved('to_device') || !since ? this.toDevice.getToDeviceSince(userId, deviceId, since?.to_device ?? 0) : undefined,
      since && moved('device_lists') ? this.keys.getDeviceListChangesSince(userId, since.device_lists) : undefined,
      moved('receipts') ? this.receipts.getReceiptsSince(joinedNow.filter(inScope), since?.receipts ?? 0, userId) : undefined,
      moved('typing') ? this.typing.getTypingSince(joinedNow.filter(inScope), since?.typing ?? 0) : undefined,
    ]);
    upTo.account_data = accountData?.position ?? since?.account_data ?? upTo.account_data;
    upTo.to_device = toDevice?.position ?? since?.to_device ?? upTo.to_device;
    upTo.device_lists = deviceLists?.position ?? since?.device_lists ?? upTo.device_lists;
    upTo.receipts = receipts?.position ?? since?.receipts ?? upTo.receipts;
    upTo.typing = typing?.position ?? since?.typing ?? upTo.typing;
    req.ignored = await this.ignoredUsers.forSync(userId, since?.account_data, upTo.account_data, accountData);

    const rooms = { join: {} as Json, invite: {} as Json, leave: {} as Json, knock: {} as Json };
    const plans = await this.planRooms(userId, memberships, window, req.fullState, inScope, roomFilter?.include_leave === true);
    const ephemeralRooms = new Set([...Object.keys(receipts?.rooms ?? {}), ...Object.keys(typing?.rooms ?? {}), ...Object.keys(accountData?.rooms ?? {})]);
    for (const roomId of ephemeralRooms) {
      if (joinedNow.includes(roomId) && inScope(roomId) && !plans.joined.some((p) => p.roomId === roomId)) {
        plans.joined.push({ roomId, timelineAfter: since!.events, fullState: false, joinedThroughout: true });
      }
    }

    for (const plan of plans.joined) {
      const room = await this.joinedRoom(req, plan, window);
      const ephemeral: Json[] = [];
      const typers = typing?.rooms[plan.roomId];
      if (typers !== undefined) ephemeral.push({ type: 'm.typing', content: { user_ids: typers } });
      const receiptContent: ReceiptContent | undefined = receipts?.rooms[plan.roomId];
      if (receiptContent) ephemeral.push({ type: 'm.receipt', content: receiptContent });
      room.ephemeral = { events: ephemeral.filter((e) => eventPasses(roomFilter?.ephemeral, { type: e.type as string, room_id: plan.roomId })) };
      room.account_data = { events: filterAccountData(accountData?.rooms[plan.roomId] ?? [], roomFilter?.account_data) };
      if (!plan.joinedThroughout || !since || room.hasOwnNews || receiptContent) {
        const ownReceipt = receiptContent !== undefined && Object.values(receiptContent).some((types) => Object.values(types).some((users) => userId in users));
        Object.assign(room, await this.unreadCounts(userId, plan.roomId, upTo.events, ownReceipt, roomFilter?.timeline?.unread_thread_notifications === true));
      }
      delete room.hasOwnNews;
      rooms.join[plan.roomId] = room;
    }
    for (const m of plans.invited) {
      const invite = await getEvent(this.db, m.eventId);
      // Spec "Ignoring Users": invites from ignored users are not sent to the client.
      if (invite && req.ignored.has(invite.sender)) continue;
      rooms.invite[m.roomId] = { invite_state: { events: await this.strippedState(m, invite) } };
    }
    for (const m of plans.knocked) rooms.knock[m.roomId] = { knock_state: { events: await this.strippedState(m) } };
    for (const m of plans.left) rooms.leave[m.roomId] = await this.leftRoom(req, m, window);

    const response: Json = { next_batch: '' };
    const account = filterAccountData(accountData?.global ?? [], filter.account_data);
    let presenceEvents: PresenceEvent[] = [];
    if (moved('presence')) {
      const users = await getUsersSharingRooms(this.db, userId);
      const result = await this.presence.getPresenceSince(users.length > 0 ? users : [userId], since?.presence ?? 0);
      upTo.presence = result.position;
      presenceEvents = result.events.filter((e) => eventPasses(filter.presence, { type: e.type, sender: e.sender }));
    } else {
      upTo.presence = since?.presence ?? upTo.presence;
    }
    const newlyShared = plans.joined.filter((p) => !p.joinedThroughout && since).map((p) => p.roomId);
    const changedDevices = new Set(deviceLists?.changed ?? []);
    for (const roomId of newlyShared) for (const u of await getRoomMembers(this.db, roomId, 'join')) if (u !== userId) changedDevices.add(u);
    if (since) presenceEvents.push(...(await this.newlySeenPresence(userId, newlyShared, rooms.join, presenceEvents, filter)));

    const { oneTimeKeys: otkCounts, unusedFallbackTypes: fallbackTypes } = await this.keys.keyCountsForSync(userId, deviceId);

    const roomsOut: Json = {};
    for (const kind of ['join', 'invite', 'leave', 'knock'] as const) if (Object.keys(rooms[kind]).length > 0) roomsOut[kind] = rooms[kind];
    if (Object.keys(roomsOut).length > 0) response.rooms = roomsOut;
    if (account.length > 0) response.account_data = { events: account };
    if (presenceEvents.length > 0) response.presence = { events: presenceEvents };
    if (toDevice && toDevice.events.length > 0) response.to_device = { events: toDevice.events };
    const sharing = since ? await usersNoLongerSharing(this.db, this.notifier.recent, userId, memberships, joinedNow, since.events, upTo.events) : undefined;
    for (const u of sharing?.joined ?? []) changedDevices.add(u);
    const leftDevices = sharing?.left ?? [];
    if (since && (changedDevices.size > 0 || leftDevices.length > 0)) {
      response.device_lists = { changed: [...changedDevices].sort(), left: leftDevices };
    }
    response.device_one_time_keys_count = otkCounts;
    response.device_unused_fallback_key_types = fallbackTypes;
    response.next_batch = encodeSyncToken(upTo);

    const hasNews =
      Object.keys(roomsOut).length > 0 || account.length > 0 || presenceEvents.length > 0 || (toDevice?.events.length ?? 0) > 0 || response.device_lists !== undefined;
    return { response, hasNews, joinedRooms: joinedNow };
  }

  /** Which rooms go in the response, and how. */
  private async planRooms(
    userId: string,
    memberships: UserMembership[],
    window: Window,
    fullState: boolean,
    inScope: (roomId: string) => boolean,
    includeLeave: boolean,
  ): Promise<{ joined: JoinedRoomPlan[]; invited: UserMembership[]; knocked: UserMembership[]; left: UserMembership[] }> {
    const { since, upTo } = window;
    const plan = { joined: [] as JoinedRoomPlan[], invited: [] as UserMembership[], knocked: [] as UserMembership[], left: [] as UserMembership[] };
    const scoped = memberships.filter((m) => inScope(m.roomId));
    if (!since) {
      const forgotten = await directoryStore.forgotten(this.db, userId);
      for (const m of scoped) {
        if (m.membership === 'join') plan.joined.push({ roomId: m.roomId, fullState: true, joinedThroughout: false });
        else if (m.membership === 'invite') plan.invited.push(m);
        else if (m.membership === 'knock') plan.knocked.push(m);
        else if (includeLeave && (forgotten.get(m.roomId) ?? -1) < m.streamPos) plan.left.push(m);
      }
      return plan;
    }
    const unchangedJoined: string[] = [];
    for (const m of scoped) {
      if (m.streamPos <= since.events) {
        if (m.membership === 'join') {
          if (fullState) plan.joined.push({ roomId: m.roomId, timelineAfter: since.events, fullState: true, joinedThroughout: true });
          else unchangedJoined.push(m.roomId);
        }
        continue;
      }
      // The membership changed in the window: what was it at `since`?
      const before = await this.membershipAt(m.roomId, userId, since.events);
      if (m.membership === 'join') {
        if (before === 'join') {
          plan.joined.push({ roomId: m.roomId, timelineAfter: since.events, fullState, joinedThroughout: true });
        } else {
          plan.joined.push({ roomId: m.roomId, fullState: true, joinedThroughout: false });
        }
      } else if (m.membership === 'invite') plan.invited.push(m);
      else if (m.membership === 'knock') plan.knocked.push(m);
      // As Synapse: a leave or ban in the window always shows (an invite both received and
      // rejected since the token too), whatever the membership was at `since`.
      else if (m.membership === 'leave' || m.membership === 'ban') plan.left.push(m);
    }
    if (!fullState) {
      const recent = this.notifier.recent.eventsBetween(since.events, upTo.events, new Set(unchangedJoined));
      const withEvents = recent ? new Set(recent.map((n) => n.roomId)) : await getRoomsWithEventsBetween(this.db, unchangedJoined, since.events, upTo.events);
      for (const roomId of withEvents) {
        plan.joined.push({ roomId, timelineAfter: since.events, fullState: false, joinedThroughout: true });
      }
    }
    return plan;
  }

  private async membershipAt(roomId: string, userId: string, position: number): Promise<string | undefined> {
    const history = await getUserMembershipHistory(this.db, roomId, userId);
    let membership: string | undefined;
    for (const h of history) if (h.streamPos <= position) membership = h.membership;
    return membership;
  }

  private async joinedRoom(req: SyncCall, plan: JoinedRoomPlan, window: Window): Promise<Json & { hasOwnNews?: boolean }> {
    const limit = timelineLimit(req.filter.room?.timeline);
    const fetched =
      (await this.recentTimeline(plan.roomId, plan.timelineAfter, window.upTo.events, limit + 1)) ??
      (await getRoomTimeline(this.db, plan.roomId, { direction: 'b', from: window.upTo.events + 1, to: plan.timelineAfter, limit: limit + 1 }));
    return this.roomSection(req, plan.roomId, fetched, limit, plan.timelineAfter, plan.fullState, plan.joinedThroughout, window, true);
  }

  /** The room's events in (after, upTo], newest first, at most `count`, from the in-memory stream; undefined when it does not cover them. */
  private async recentTimeline(roomId: string, after: number | undefined, upTo: number, count: number): Promise<StoredEvent[] | undefined> {
    if (after === undefined) return undefined;
    const notes = this.notifier.recent.eventsBetween(after, upTo, new Set([roomId]));
    if (!notes) return undefined;
    const events = await this.notifier.recent.storedEvents(notes.slice(-count));
    return events?.reverse();
  }

  /**
   * As Synapse, an incremental sync tells the presence of the users newly seen: the members of
   * the rooms joined since the token, and those who joined the user's rooms since it (their
   * join in the timeline or state sent). Their presence may predate the token, so the presence
   * stream alone never tells it. Those already in `already` are not repeated.
   */
  private async newlySeenPresence(userId: string, newlyShared: string[], joined: Json, already: PresenceEvent[], filter: SyncCall['filter']): Promise<PresenceEvent[]> {
    const users = new Set<string>();
    for (const roomId of newlyShared) for (const u of await getRoomMembers(this.db, roomId, 'join')) users.add(u);
    for (const room of Object.values(joined) as Json[]) {
      const events = [...(((room.timeline as Json | undefined)?.events ?? []) as ClientEvent[]), ...(((room.state as Json | undefined)?.events ?? []) as ClientEvent[])];
      for (const e of events) {
        if (e.type !== 'm.room.member' || typeof e.state_key !== 'string' || e.content?.membership !== 'join') continue;
        if ((e.unsigned?.prev_content as Json | undefined)?.membership === 'join') continue; // a profile change, not a join
        users.add(e.state_key);
      }
    }
    users.delete(userId);
    for (const e of already) users.delete(e.sender);
    const events = await this.presence.presenceOf([...users]);
    return events.filter((e) => eventPasses(filter.presence, { type: e.type, sender: e.sender }));
  }

  /**
   * ClientEvents for the requesting device, from memory when the notifications tell the
   * transaction ids and nothing was redacted; else through RoomReads (the database).
   */
  private async clientEvents(events: StoredEvent[], requester: { userId: string; deviceId: string }): Promise<ClientEvent[]> {
    const txnIds = new Map<string, string>();
    for (const e of events) {
      if (e.redactedBy) return this.reads.toClientEvents(events, requester, true);
      if (e.sender !== requester.userId) continue;
      const n = this.notifier.recent.notification(e.eventId);
      if (!n) return this.reads.toClientEvents(events, requester, true);
      if (n.transactionId && n.transactionId.userId === requester.userId && n.transactionId.deviceId === requester.deviceId) txnIds.set(e.eventId, n.transactionId.txnId);
    }
    // Timeline state events carry what they replaced (unsigned.prev_content).
    const replaced = events.some((e) => e.stateKey !== null) ? await this.reads.replacedState(events) : undefined;
    const membership = await this.timelineMembership(requester.userId, events);
    const now = Date.now();
    return events.map((e) => toClientEvent(e, { txnIds, replaced, membership, now }));
  }

  /**
   * unsigned.membership of timeline events (RoomReads.membershipAt). The common case costs no
   * read: the user joined (the in-memory memberships say) no later than the events.
   */
  private async timelineMembership(userId: string, events: StoredEvent[]): Promise<Map<string, string>> {
    const mine = this.notifier.recent.isCurrentAt(this.notifier.positions().events) ? await this.notifier.recent.membershipsOf(userId) : undefined;
    const joinedSince = new Map((mine ?? []).filter((m) => m.membership === 'join').map((m) => [m.roomId, m.streamPos]));
    const allJoined = events.every((e) => e.streamPos !== null && (joinedSince.get(e.roomId) ?? Number.POSITIVE_INFINITY) <= e.streamPos);
    if (!allJoined) return this.reads.membershipAt(userId, events);
    return new Map(events.map((e) => [e.eventId, 'join']));
  }

  private async leftRoom(req: SyncCall, m: UserMembership, window: Window): Promise<Json> {
    const limit = timelineLimit(req.filter.room?.timeline);
    const after = window.since?.events;
    const fetched = await getRoomTimeline(this.db, m.roomId, { direction: 'b', from: m.streamPos + 1, to: after, limit: limit + 1 });
    // The room as the user left it: state (with an empty timeline too) and prev_batch end at the leave.
    const atLeave: Window = { ...window, upTo: { ...window.upTo, events: m.streamPos } };
    const section = await this.roomSection(req, m.roomId, fetched, limit, after, after === undefined || req.fullState, false, atLeave, false);
    delete section.hasOwnNews;
    return section;
  }

  /** timeline, state (and summary for joined rooms) of one room; `fetched` is newest first, up to limit + 1. */
  private async roomSection(
    req: SyncCall,
    roomId: string,
    fetched: StoredEvent[],
    limit: number,
    timelineAfter: number | undefined,
    fullState: boolean,
    joinedThroughout: boolean,
    window: Window,
    joined: boolean,
  ): Promise<Json & { hasOwnNews?: boolean }> {
    const { userId } = req;
    const roomFilter = req.filter.room;
    const timelineFilter = roomFilter?.timeline;
    const ignored = req.ignored ?? new Set<string>();
    const passes = (e: StoredEvent) =>
      eventPasses(timelineFilter, { type: e.type, sender: e.sender, room_id: roomId, content: e.json.content }) && !hiddenByIgnore(ignored, e);
    let limited = fetched.length > limit;
    let newestFirst = fetched.slice(0, limit);
    // The limit counts the events that pass the filter: when it drops some, look further back.
    if (limited && limit > 0 && (isSelective(timelineFilter) || ignored.size > 0)) ({ newestFirst, limited } = await this.filteredTimeline(roomId, fetched, limit, timelineAfter, passes));
    let timeline = newestFirst.reverse();
    if (!joinedThroughout) timeline = await this.reads.visibleEvents(userId, roomId, timeline);
    const shown = timeline.filter(passes);
    const first = timeline[0];
    const prevBatch = encodePaginationToken(first ? first.streamPos! - 1 : (timelineAfter ?? window.upTo.events));

    // Lazy loading (spec "Lazy-loading room members"): members only for the timeline's senders
    // whose membership the timeline does not show before their events (and the user's own on full state).
    // With state_after the client takes no state from the timeline: every sender's member is needed.
    const stateAfter = req.useStateAfter === true;
    const stateFilter = roomFilter?.state;
    let needed: Set<string> | undefined;
    if (stateFilter?.lazy_load_members) {
      needed = new Set();
      const seen = new Set<string>();
      for (const e of shown) {
        if (e.type === 'm.room.member' && e.stateKey !== null && !stateAfter) seen.add(e.stateKey);
        if (!seen.has(e.sender)) needed.add(e.sender);
      }
      if (fullState) needed.add(userId);
    }
    // Members this device was already sent are redundant (unless asked for, or on a full_state sync).
    const forgetsRedundant = !!needed && !!req.lazy;
    const sent = forgetsRedundant && window.since && !req.fullState ? req.lazy!.sent(roomId) : undefined;

    // State up to the start of the timeline (or its end, for state_after): in full, or what changed since the last sync.
    let wanted: StateTriple[] = [];
    if (stateAfter) {
      // Incremental: the members this device was sent are current (every change since came in a state_after), none to read.
      const membersSent = !fullState && !!sent && !isSelective(timelineFilter) && [...needed!].every((u) => sent.has(u));
      wanted = await this.stateAfterTimeline(roomId, fetched[0], timelineAfter, fullState, membersSent ? new Set() : needed);
    } else if (fullState || limited) {
      const atStart = first ? ((await getStateBeforeEvent(this.db, first.eventId)) ?? []) : await this.stateAt(roomId, window.upTo.events);
      if (!fullState && timelineAfter !== undefined) {
        // Every change in the gap (members too), and the senders' members besides.
        const before = new Set((await this.stateAt(roomId, timelineAfter)).map(([, , id]) => id));
        wanted = atStart.filter(([, , id]) => !before.has(id));
        if (needed) {
          const changed = new Set(wanted.map(([, , id]) => id));
          for (const t of atStart) if (t[0] === 'm.room.member' && needed.has(t[1]) && !changed.has(t[2])) wanted.push(t);
        }
      } else {
        wanted = needed ? atStart.filter(([type, key]) => type !== 'm.room.member' || needed.has(key)) : atStart;
      }
    } else if (needed && first && needed.size > 0 && !(sent && !isSelective(timelineFilter) && [...needed].every((u) => sent.has(u)))) {
      // Not gappy: no state changed before the timeline; the senders' members as of its start.
      // (With an unfiltered timeline, members this device has were sent since or shown in it: no read.)
      const atStart = (await getStateBeforeEvent(this.db, first.eventId)) ?? [];
      wanted = atStart.filter(([type, key]) => type === 'm.room.member' && needed.has(key));
    }
    if (sent) wanted = wanted.filter(([type, key, id]) => type !== 'm.room.member' || sent.get(key) !== id);
    wanted = wanted.filter(([type]) => eventPasses(stateFilter, { type, room_id: roomId }));
    let stateEvents: StoredEvent[] = [];
    if (wanted.length > 0) {
      const found = await getEvents(this.db, wanted.map(([, , id]) => id));
      // `state` is before the timeline, so leaves out the timeline's own state events; `state_after` does not.
      const inTimeline = new Set(stateAfter ? [] : shown.map((e) => e.eventId));
      stateEvents = wanted
        .map(([, , id]) => found.get(id))
        .filter((e): e is StoredEvent => !!e && !inTimeline.has(e.eventId) && eventPasses(stateFilter, { type: e.type, sender: e.sender }));
    }
    if (forgetsRedundant) {
      // With state_after the client's state is state_after alone: members in the timeline only are not its.
      const members = [...stateEvents, ...(stateAfter ? [] : shown)].filter((e) => e.type === 'm.room.member' && e.stateKey !== null).map((e) => [e.stateKey!, e.eventId] as const);
      if (members.length > 0) req.lazy!.remember(roomId, members);
    }

    const requester = { userId, deviceId: req.deviceId };
    const [timelineOut, stateOut] = await Promise.all([this.clientEvents(shown, requester), this.reads.toClientEvents(stateEvents, requester)]);
    const { event_format: format, event_fields: fields } = req.filter;
    const shaped = format === 'federation' || fields !== undefined;
    const section: Json & { hasOwnNews?: boolean } = {
      timeline: { events: shaped ? shapeEvents(timelineOut, shown, req.filter) : timelineOut, limited, prev_batch: prevBatch },
      [stateAfter ? 'state_after' : 'state']: { events: shaped ? shapeEvents(stateOut, stateEvents, req.filter) : stateOut },
    };
    if (joined) {
      const membershipChanged = shown.some((e) => e.type === 'm.room.member') || stateEvents.some((e) => e.type === 'm.room.member');
      if (fullState || membershipChanged) section.summary = await this.summary(roomId, userId);
      section.hasOwnNews = shown.some((e) => e.sender !== userId);
    }
    return section;
  }

  /**
   * What `state_after` holds (use_state_after; spec 1.16, MSC4222): the state at the end of the
   * timeline, after `newest` (the window's newest event, shown or not). On a full-state section,
   * that state in full; else what changed since `timelineAfter` (the end of the previous sync's
   * timeline), the timeline's own state events included. Lazy-loading members (`needed`: the
   * members to send; undefined when not lazy), only theirs on full state, while an incremental
   * sync sends every change, members too (as `state` does in a gap), and theirs besides.
   */
  private async stateAfterTimeline(
    roomId: string,
    newest: StoredEvent | undefined,
    timelineAfter: number | undefined,
    fullState: boolean,
    needed: ReadonlySet<string> | undefined,
  ): Promise<StateTriple[]> {
    if (fullState || timelineAfter === undefined) {
      const end = newest ?? (timelineAfter === undefined ? null : await getLastRoomEventAtOrBefore(this.db, roomId, timelineAfter));
      const atEnd = await this.stateAfterEvent(end);
      return needed ? atEnd.filter(([type, key]) => type !== 'm.room.member' || needed.has(key)) : atEnd;
    }
    if (!newest) return []; // Nothing happened in the room since the last sync.
    const start = await getLastRoomEventAtOrBefore(this.db, roomId, timelineAfter);
    const unchanged = !!start && !start.outlier && !newest.outlier && start.stateAfterNid === newest.stateAfterNid;
    if (unchanged && !needed?.size) return [];
    const atEnd = await this.stateAfterEvent(newest);
    let changed: StateTriple[] = [];
    if (!unchanged) {
      const before = new Set((await this.stateAfterEvent(start)).map(([, , id]) => id));
      changed = atEnd.filter(([, , id]) => !before.has(id));
    }
    if (needed) {
      const inChanged = new Set(changed.map(([, , id]) => id));
      for (const t of atEnd) if (t[0] === 'm.room.member' && needed.has(t[1]) && !inChanged.has(t[2])) changed.push(t);
    }
    return changed;
  }

  /** The state after an event (as stateAt reads it); the empty state for none. */
  private async stateAfterEvent(event: StoredEvent | null): Promise<StateTriple[]> {
    return event ? ((await getStateAfterEvent(this.db, event.eventId)) ?? []) : [];
  }

  /**
   * The newest `limit` events after `after` that pass the timeline filter, looking further back
   * than `fetched` (newest first, limit + 1 of them) in bounded rounds; limited when more pass
   * before them, or when the rounds ran out before the window's start.
   */
  private async filteredTimeline(
    roomId: string,
    fetched: StoredEvent[],
    limit: number,
    after: number | undefined,
    passes: (e: StoredEvent) => boolean,
  ): Promise<{ newestFirst: StoredEvent[]; limited: boolean }> {
    const passing = fetched.filter(passes);
    let oldest = fetched[fetched.length - 1]!.streamPos!;
    let exhausted = false;
    for (let round = 0; round < MAX_FILTERED_ROUNDS && passing.length <= limit; round++) {
      const batch = await getRoomTimeline(this.db, roomId, { direction: 'b', from: oldest, to: after, limit: FILTERED_BATCH });
      for (const e of batch) if (passes(e)) passing.push(e);
      if (batch.length < FILTERED_BATCH) {
        exhausted = true;
        break;
      }
      oldest = batch[batch.length - 1]!.streamPos!;
    }
    return { newestFirst: passing.slice(0, limit), limited: passing.length > limit || !exhausted };
  }

  /** The room's state at a stream position (after its last event at or before it). */
  private async stateAt(roomId: string, position: number): Promise<StateTriple[]> {
    return this.stateAfterEvent(await getLastRoomEventAtOrBefore(this.db, roomId, position));
  }

  /** m.heroes (up to 5 other members, as the spec recommends), joined and invited counts. */
  private async summary(roomId: string, userId: string): Promise<Json> {
    const [joined, invited] = await Promise.all([getRoomMembers(this.db, roomId, 'join'), getRoomMembers(this.db, roomId, 'invite')]);
    let heroes = [...joined, ...invited].filter((u) => u !== userId).sort().slice(0, 5);
    if (heroes.length === 0) {
      heroes = (await getRoomMembers(this.db, roomId, 'leave')).filter((u) => u !== userId).sort().slice(0, 5);
    }
    return { 'm.heroes': heroes, 'm.joined_member_count': joined.length, 'm.invited_member_count': invited.length };
  }

  /**
   * unread_notifications by the user's push rules (NotificationCounter); with the timeline
   * filter's unread_thread_notifications, the main timeline's counts and each thread's apart.
   */
  private async unreadCounts(userId: string, roomId: string, upTo: number, receiptMoved: boolean, threaded: boolean): Promise<Json> {
    const tally = await this.counter.counts(userId, roomId, upTo, receiptMoved);
    if (!threaded) return { unread_notifications: tally.total() };
    return { unread_notifications: tally.main(), unread_thread_notifications: tally.threads() };
  }

  /** Stripped state for an invite or knock: from the event's invite_room_state when a remote server sent one, else the room's current state here. */
  private async strippedState(m: UserMembership, own?: StoredEvent | null): Promise<StrippedStateEvent[]> {
    own ??= await getEvent(this.db, m.eventId);
    const carried = (own?.json.unsigned as Json | undefined)?.invite_room_state ?? (own?.json.unsigned as Json | undefined)?.knock_room_state;
    const events: StrippedStateEvent[] = Array.isArray(carried) ? (carried as StrippedStateEvent[]) : [];
    if (events.length === 0) {
      for (const e of await getCurrentStateEvents(this.db, m.roomId, STRIPPED_STATE_TYPES)) if (e.stateKey === '') events.push(toStrippedState(e));
    }
    if (own) events.push(toStrippedState(own));
    return events;
  }
}

/** The timeline filter's limit; 0 is no timeline at all (as Synapse; Sytest asks it). */
function timelineLimit(filter: RoomEventFilter | undefined): number {
  return filter?.limit === 0 ? 0 : filterLimit(filter, DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT);
}

/**
 * The filter's event_format (federation: the PDU as stored, with event_id and unsigned) and
 * event_fields applied to serialized events; `stored` are the same events in the same order.
 */
function shapeEvents(events: ClientEvent[], stored: StoredEvent[], filter: SyncFilter): Json[] {
  return events.map((e, i) => {
    let out = e as unknown as Json;
    if (filter.event_format === 'federation') out = { ...stored[i]!.json, content: e.content, event_id: e.event_id, unsigned: e.unsigned };
    return filter.event_fields ? onlyFields(out, filter.event_fields) : out;
  });
}

function filterAccountData(events: AccountDataEvent[], filter: RoomEventFilter | undefined): AccountDataEvent[] {
  const passing = events.filter((e) => eventPasses(filter, { type: e.type }));
  const limit = filter?.limit;
  return typeof limit === 'number' && limit >= 0 ? passing.slice(0, limit) : passing;
}

export type { ClientEvent };
