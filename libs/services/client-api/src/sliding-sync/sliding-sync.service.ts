import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import { getCurrentStreamPosition, getEvents, getUserMemberships, type Db, type StoredEvent, type UserMembership } from '@tessera/storage';
import { directoryStore } from '../directory/directory.store.js';
import { MatrixError } from '../errors.js';
import { CLIENT_API_DB } from '../tokens.js';
import { SYNC_STREAMS, type SyncPositions } from '../sync-token.js';
import { SyncNotifier } from '../sync/sync-notifier.js';
import { AccountDataService } from '../user-data/account-data.service.js';
import { IgnoredUsers } from '../user-data/ignored-users.js';
import { ReceiptsService } from '../user-data/receipts.service.js';
import { ConnectionStore, type Generation, type SentRoom } from './connection-store.js';
import { Departures, getRoomTags, getSpaceChildRooms } from './list-facts.js';
import { getRoomActivity, type RoomActivity } from './room-activity.js';
import { passesFilters, roomsInRanges, sortByActivity, type FilterContext, type ListRoom } from './room-list.js';
import { requiredStateExpanded } from './required-state.js';
import { SlidingSyncExtensionsBuilder } from './sliding-extensions.js';
import { decodeSlidingPos, encodeSlidingPos } from './sliding-pos.js';
import type { RoomConfig, SlidingSyncRequest } from './sliding-sync-request.js';
import { SlidingRoomData } from './sliding-room-data.js';

type Json = Record<string, unknown>;

/** What one pass computed; committed (given a pos) only when it is the answer. */
interface Pass {
  response: Json;
  rooms: Map<string, SentRoom>;
  upTo: SyncPositions;
  hasNews: boolean;
  listCounts: Record<string, number>;
  subscriptions: Map<string, RoomConfig>;
  /** The rooms whose events wake the long poll. */
  watched: string[];
}

/** A room of the user's server-side list, with what is needed to send it. */
interface Candidate extends ListRoom {
  m: UserMembership;
  event?: StoredEvent | null;
  bump?: number;
}

const unknownPos = () => new MatrixError(400, 'M_UNKNOWN_POS', 'Unknown or expired pos: start a new connection (a request without pos)');

/**
 * Simplified sliding sync (MSC4186, as served under org.matrix.simplified_msc3575): the
 * user's rooms as lists ordered by activity and sliced by range, explicitly subscribed rooms,
 * and extensions; each connection's record (ConnectionStore) makes later responses carry only
 * rooms with changes, with only what changed. Long polls wait on SyncNotifier, as /sync does.
 */
@Injectable()
export class SlidingSyncService {
  readonly connections = new ConnectionStore();
  private readonly departures = new Departures();
  /** Wake-ups answered by going back to wait without computing (quiet()), and passes computed: for tests and measurements. */
  readonly stats = { quietWakes: 0, passes: 0 };

  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(CLIENT_API_DB) private readonly clientDb: Db,
    @Inject(SyncNotifier) private readonly notifier: SyncNotifier,
    @Inject(AccountDataService) private readonly accountData: AccountDataService,
    @Inject(ReceiptsService) private readonly receipts: ReceiptsService,
    @Inject(IgnoredUsers) private readonly ignoredUsers: IgnoredUsers,
    @Inject(SlidingRoomData) private readonly roomData: SlidingRoomData,
    @Inject(SlidingSyncExtensionsBuilder) private readonly extensions: SlidingSyncExtensionsBuilder,
  ) {}

  async sync(userId: string, deviceId: string, req: SlidingSyncRequest): Promise<Json> {
    const key = ConnectionStore.key(userId, deviceId, req.connId);
    let base: Generation | undefined;
    let nonce: string;
    if (req.pos !== undefined) {
      // The record is looked up under the requester's own key: a pos of another user or device is unknown.
      const pos = decodeSlidingPos(req.pos);
      base = pos && this.connections.resume(key, pos);
      if (!pos || !base) throw unknownPos();
      nonce = pos.nonce;
    } else {
      nonce = this.connections.start(key).nonce;
    }
    const since = base?.positions;
    // Without a pos the answer is immediate (the MSC: timeout is ignored).
    const deadline = Date.now() + (since ? req.timeoutMs : 0);
    if (since && SYNC_STREAMS.some((s) => since[s] > this.notifier.positions()[s])) await this.notifier.refreshKnown();
    // An answer given at once reads the log's position, so it sees what its client just wrote.
    if (!since || req.timeoutMs <= 0) this.notifier.observe('events', await getCurrentStreamPosition(this.db));

    // The positions a pass found nothing to send at, and the rooms it watches: a wake-up that
    // brings nothing for this connection after them goes back to waiting without another pass.
    let idle: { upTo: SyncPositions; watched: string[] } | undefined;
    for (;;) {
      if (idle && (await this.quiet(userId, req, idle.upTo))) this.stats.quietWakes++;
      else {
        const pass = await this.compute(userId, deviceId, req, base);
        if (pass.hasNews || !since || Date.now() >= deadline) return this.commit(key, nonce, pass);
        idle = { upTo: pass.upTo, watched: pass.watched };
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) return this.commit(key, nonce, await this.compute(userId, deviceId, req, base));
      // Nothing new: wait for a notification about this user or their rooms, then look again.
      const wait = this.notifier.waitFor(userId, idle.watched, remaining);
      // What arrived between the pass and registering does not wake it: look now.
      if (!(await this.quiet(userId, req, idle.upTo))) wait.cancel();
      await wait.promise;
    }
  }

  /**
   * Whether nothing this connection sends moved after `upTo` (where a pass of this request
   * found nothing to send): no stream it reads moved, or only the events stream, with no event
   * in the user's joined rooms and no membership of theirs after it (the notifier's recent copy
   * vouches for both, as /sync's joinedRoomsIfNothingMoved). Presence is not part of sliding
   * sync; typing, to-device and device lists count only with their extension on. False when
   * unsure (then a pass decides).
   */
  private async quiet(userId: string, req: SlidingSyncRequest, upTo: SyncPositions): Promise<boolean> {
    const known = this.notifier.positions();
    const ext = req.extensions;
    for (const s of SYNC_STREAMS) {
      if (known[s] <= upTo[s] || s === 'events' || s === 'presence') continue;
      if (s === 'typing' && !ext.typing) continue;
      if (s === 'to_device' && !ext.toDevice) continue;
      if (s === 'device_lists' && !ext.e2ee) continue;
      return false; // account data (m.direct, tags, the ignore list besides the extension), receipts (the user's own move counts)
    }
    if (known.events <= upTo.events) return true;
    const recent = this.notifier.recent;
    if (!recent.isCurrentAt(known.events)) return false;
    const memberships = await recent.membershipsOf(userId);
    if (!memberships || memberships.some((m) => m.streamPos > upTo.events)) return false;
    const joined = new Set(memberships.filter((m) => m.membership === 'join').map((m) => m.roomId));
    const events = recent.eventsBetween(upTo.events, known.events, joined);
    return events !== undefined && events.length === 0;
  }

  private commit(key: string, nonce: string, pass: Pass): Json {
    const generation = this.connections.commit(key, nonce, { positions: pass.upTo, rooms: pass.rooms, listCounts: pass.listCounts, subscriptions: pass.subscriptions });
    // The connection was restarted (a request without pos) while this one ran: this answer belongs to no connection.
    if (generation === undefined) throw unknownPos();
    return { pos: encodeSlidingPos({ positions: pass.upTo, nonce, generation }), ...pass.response };
  }

  private async compute(userId: string, deviceId: string, req: SlidingSyncRequest, base: Generation | undefined): Promise<Pass> {
    this.stats.passes++;
    const since = base?.positions;
    const upTo: SyncPositions = this.notifier.positions();
    // Never behind the pos (a token another replica gave may be ahead of what this one heard of).
    if (since) for (const s of SYNC_STREAMS) upTo[s] = Math.max(upTo[s], since[s]);
    // The notifier's copy of the user's memberships when it is current at our position (as /sync), else the store.
    const recent = this.notifier.recent;
    const memberships = (recent.isCurrentAt(upTo.events) ? await recent.membershipsOf(userId) : undefined) ?? (await getUserMemberships(this.db, userId));
    // Memberships committed after the position we know: everything up to them is committed too.
    for (const m of memberships) if (m.streamPos > upTo.events) upTo.events = m.streamPos;
    const lists = [...req.lists.values()];
    const withTags = lists.some((l) => l.filters.tags !== undefined || l.filters.notTags !== undefined);
    const [candidates, ignored] = await Promise.all([this.candidates(userId, memberships, base, upTo.events, withTags), this.ignoredUsers.of(userId)]);
    const visibleCandidates = candidates.filter((c) => !(c.m.membership === 'invite' && c.event && ignored.has(c.event.sender)));
    const byRoom = new Map(visibleCandidates.map((c) => [c.roomId, c]));

    // Lists: filter, order by activity, take the ranges. A room in several lists and subscriptions gets the combined config.
    const configs = new Map<string, { config: RoomConfig; lists: string[] }>();
    const combine = (roomId: string, config: RoomConfig, list?: string) => {
      const known = configs.get(roomId);
      if (!known) configs.set(roomId, { config: { timelineLimit: config.timelineLimit, requiredState: [...config.requiredState] }, lists: list ? [list] : [] });
      else {
        known.config.timelineLimit = Math.max(known.config.timelineLimit, config.timelineLimit);
        known.config.requiredState.push(...config.requiredState);
        if (list) known.lists.push(list);
      }
    };
    const listsOut: Json = {};
    const listRooms = new Map<string, string[]>();
    const sorted = sortByActivity(visibleCandidates);
    const spaceChildren = await this.spaceChildren(memberships, lists.map((l) => l.filters.spaces));
    for (const [name, list] of req.lists) {
      const context: FilterContext = list.filters.spaces ? { spaceChildren: spaceChildren.get(list.filters.spaces.join('\u0000')) } : {};
      const filtered = sorted.filter((c) => passesFilters(c, list.filters, context));
      const inRange = roomsInRanges(filtered, list.ranges);
      listsOut[name] = { count: filtered.length };
      listRooms.set(name, inRange.map((c) => c.roomId));
      for (const c of inRange) combine(c.roomId, list.config, name);
    }
    // Subscriptions: rooms the user is, was, or is invited to or knocking on; others are ignored (the MSC).
    const subscriptions = activeSubscriptions(base?.subscriptions, req);
    const subscribed: string[] = [];
    for (const [roomId, config] of subscriptions) {
      const m = byRoom.get(roomId)?.m ?? memberships.find((x) => x.roomId === roomId && (x.membership === 'leave' || x.membership === 'ban'));
      if (!m) continue;
      if (!byRoom.has(roomId)) byRoom.set(roomId, { roomId, membership: m.membership, activity: m.streamPos, isDm: false, m });
      subscribed.push(roomId);
      combine(roomId, config);
    }

    // Each matched room goes out when it is new to the connection, changed since it was sent, or asks for more than it was sent with.
    const rooms = new Map(base?.rooms ?? []);
    const roomsOut: Json = {};
    const initialRooms = new Set<string>();
    const countsMoved = since ? await this.ownReceiptMoved(userId, since, upTo, [...configs.keys()]) : new Set<string>();
    for (const [roomId, { config, lists }] of configs) {
      const c = byRoom.get(roomId)!;
      const previous = base?.rooms.get(roomId);
      const { initial, changed } = this.sendDecision(c, config, previous, countsMoved.has(roomId));
      if (!changed) continue;
      const built = await this.roomData.build({
        userId,
        deviceId,
        membership: c.m,
        membershipEvent: c.event,
        config,
        previous,
        initial,
        upTo: upTo.events,
        liveAfter: since?.events,
        isDm: c.isDm,
        receiptMoved: countsMoved.has(roomId),
        bumpStamp: c.membership === 'join' ? (c.bump ?? c.m.streamPos) : c.m.streamPos,
        lists,
        ignored,
      });
      roomsOut[roomId] = built.result;
      rooms.set(roomId, built.sent);
      if (initial) initialRooms.add(roomId);
    }

    const joined = memberships.filter((m) => m.membership === 'join').map((m) => m.roomId);
    const ext = await this.extensions.build({
      userId,
      deviceId,
      config: req.extensions,
      since,
      upTo,
      memberships,
      joined,
      covered: { lists: listRooms, subscriptions: subscribed, initial: initialRooms },
    });
    const listCounts = countsOf(listsOut);
    const listsChanged = !!base && Object.entries(listCounts).some(([name, count]) => count !== base.listCounts[name]);
    const response: Json = { lists: listsOut, rooms: roomsOut, extensions: ext.extensions };
    return { response, rooms, upTo, listCounts, subscriptions, hasNews: Object.keys(roomsOut).length > 0 || ext.hasNews || listsChanged, watched: joined };
  }

  /** Per distinct `spaces` filter (its ids joined by NUL): the children of those of its spaces the user is joined to (the MSC: others are ignored). */
  private async spaceChildren(memberships: readonly UserMembership[], filters: ReadonlyArray<string[] | undefined>): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>();
    const joined = new Set(memberships.filter((m) => m.membership === 'join').map((m) => m.roomId));
    for (const spaces of filters) {
      if (!spaces || out.has(spaces.join('\u0000'))) continue;
      out.set(spaces.join('\u0000'), await getSpaceChildRooms(this.db, [...new Set(spaces)].filter((s) => joined.has(s))));
    }
    return out;
  }

  /**
   * The rooms of the user's server-side list (MSC4186 "Lists"): joined, invited, knocking;
   * kicked or banned (unless banned without ever joining, or forgotten), always; left by
   * the user themselves only when that happened since pos in a room this connection was sent.
   */
  private async candidates(userId: string, memberships: readonly UserMembership[], base: Generation | undefined, upTo: number, withTags: boolean): Promise<Candidate[]> {
    const since = base?.positions.events;
    const departures = await this.departures.of(this.db, memberships);
    const removed = memberships.filter((m) => {
      const d = departures.get(m.eventId);
      return d === 'kicked' || d === 'banned';
    });
    const forgotten = removed.length > 0 ? await directoryStore.forgotten(this.db, userId) : undefined;
    const kept = memberships.filter((m) => {
      if (m.membership === 'join' || m.membership === 'invite' || m.membership === 'knock') return true;
      if (since !== undefined && m.streamPos > since && base!.rooms.has(m.roomId)) return true;
      const d = departures.get(m.eventId);
      return (d === 'kicked' || d === 'banned') && !((forgotten?.get(m.roomId) ?? -1) >= m.streamPos);
    });
    const pending = kept.filter((m) => m.membership === 'invite' || m.membership === 'knock');
    const [activity, events, direct, tags] = await Promise.all([
      getRoomActivity(this.db, kept.map((m) => m.roomId), upTo),
      getEvents(this.db, pending.map((m) => m.eventId)),
      this.accountData.get(userId, '', 'm.direct'),
      withTags ? getRoomTags(this.clientDb, userId) : undefined,
    ]);
    const dmRooms = directRooms(direct);
    return kept.map((m) => {
      const facts: RoomActivity | undefined = activity.get(m.roomId);
      const event = events.get(m.eventId) ?? null;
      const joined = m.membership === 'join';
      const c: Candidate = {
        roomId: m.roomId,
        membership: m.membership,
        activity: joined ? Math.max(facts?.last ?? m.streamPos, m.streamPos) : m.streamPos,
        isDm: dmRooms.has(m.roomId) || (m.membership === 'invite' && event?.json.content?.is_direct === true),
        m,
        event,
      };
      if (facts?.bump !== undefined) c.bump = facts.bump;
      const roomTags = tags?.get(m.roomId);
      if (roomTags) c.tags = roomTags;
      if (facts) {
        c.roomType = facts.roomType;
        c.encrypted = facts.encrypted;
      } else if (event) Object.assign(c, factsFromStrippedState(event));
      return c;
    });
  }

  /** Rooms where the user's own read receipt moved since pos: their notification counts changed without any event. */
  private async ownReceiptMoved(userId: string, since: SyncPositions, upTo: SyncPositions, roomIds: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    if (upTo.receipts <= since.receipts || roomIds.length === 0) return out;
    const changes = await this.receipts.getReceiptsSince(roomIds, since.receipts, userId);
    for (const [roomId, content] of Object.entries(changes.rooms)) {
      if (Object.values(content).some((types) => Object.values(types).some((users) => userId in users))) out.add(roomId);
    }
    return out;
  }

  /**
   * Whether a matched room goes out, and in full. An invite or knock is always sent whole (it
   * is only stripped state), again when its membership event changed. A joined or left room
   * goes in full when new to the connection, just joined, or asking for more than it was sent
   * with (MSC4186 "Changing room configs"); else as a delta when it has events, a new
   * membership, DM flag or (own receipt moved) counts since it was sent.
   */
  private sendDecision(c: Candidate, config: RoomConfig, previous: SentRoom | undefined, receiptMoved: boolean): { initial: boolean; changed: boolean } {
    const isDm = JSON.stringify(c.isDm);
    if (!previous) return { initial: true, changed: true };
    if (c.membership === 'invite' || c.membership === 'knock') {
      const changed = previous.membership !== c.membership || c.m.streamPos > previous.upTo || previous.fields.is_dm !== isDm;
      return { initial: changed, changed };
    }
    const wasPending = previous.membership === 'invite' || previous.membership === 'knock';
    const initial = wasPending || (c.membership === 'join' && previous.membership !== 'join') || this.expanded(previous.config, config);
    const changed = initial || previous.membership !== c.membership || c.activity > previous.upTo || receiptMoved || previous.fields.is_dm !== isDm;
    return { initial, changed };
  }

  private expanded(previous: RoomConfig, next: RoomConfig): boolean {
    return next.timelineLimit > previous.timelineLimit || requiredStateExpanded(previous.requiredState, next.requiredState);
  }
}

/** Subscriptions kept per connection, at most this many (the oldest go first). */
const MAX_KEPT_SUBSCRIPTIONS = 200;

/**
 * The subscriptions in force: those of earlier requests on the connection, less
 * unsubscribe_rooms, plus (replacing) this request's. Clients that send every subscription
 * each time get the same; matrix-js-sdk sends each one once.
 */
function activeSubscriptions(kept: ReadonlyMap<string, RoomConfig> | undefined, req: SlidingSyncRequest): Map<string, RoomConfig> {
  const out = new Map(kept ?? []);
  for (const roomId of req.unsubscribeRooms) out.delete(roomId);
  for (const [roomId, config] of req.subscriptions) {
    out.delete(roomId);
    out.set(roomId, config);
  }
  while (out.size > MAX_KEPT_SUBSCRIPTIONS) out.delete(out.keys().next().value!);
  return out;
}

function countsOf(lists: Json): Record<string, number> {
  return Object.fromEntries(Object.entries(lists).map(([name, value]) => [name, (value as { count: number }).count]));
}

/** The rooms named in m.direct (user id -> room ids). */
function directRooms(content: Record<string, unknown> | undefined): Set<string> {
  const out = new Set<string>();
  for (const rooms of Object.values(content ?? {})) if (Array.isArray(rooms)) for (const r of rooms) if (typeof r === 'string') out.add(r);
  return out;
}

/** Room type and encryption of a room not held here, from the stripped state its invite carried. */
function factsFromStrippedState(event: StoredEvent): Pick<ListRoom, 'roomType' | 'encrypted'> {
  const unsigned = event.json.unsigned as Record<string, unknown> | undefined;
  const stripped = (unsigned?.invite_room_state ?? unsigned?.knock_room_state) as Array<{ type?: unknown; content?: Record<string, unknown> }> | undefined;
  if (!Array.isArray(stripped)) return {};
  const create = stripped.find((e) => e?.type === 'm.room.create');
  const out: Pick<ListRoom, 'roomType' | 'encrypted'> = { encrypted: stripped.some((e) => e?.type === 'm.room.encryption') };
  if (create) out.roomType = typeof create.content?.type === 'string' ? create.content.type : null;
  return out;
}
