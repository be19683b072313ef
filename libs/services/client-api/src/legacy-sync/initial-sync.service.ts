import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import {
  getCurrentStateEvents, getCurrentStreamPosition, getEvent, getEvents, getRoom, getRoomMembers, getStateAfterEvent, getUserMembershipInRoom,
  getUserMemberships, getUsersSharingRooms, type Db, type StoredEvent, type UserMembership,
} from '@tessera/storage';
import { directoryStore } from '../directory/directory.store.js';
import { PresenceService, type PresenceEvent } from '../ephemeral/presence.service.js';
import { forbidden } from '../errors.js';
import type { ClientEvent } from '../rooms/client-event.js';
import { RoomHistoryService, type Viewer } from '../rooms/room-history.service.js';
import { RoomReads } from '../rooms/room-reads.js';
import { SyncNotifier } from '../sync/sync-notifier.js';
import { encodeSyncToken, type SyncPositions } from '../sync-token.js';
import { AccountDataService, type AccountDataEvent } from '../user-data/account-data.service.js';
import { ReceiptsService } from '../user-data/receipts.service.js';

type Json = Record<string, unknown>;

/** A receipt event as /initialSync lists them (Synapse's `receipts`): m.receipt with its room. */
interface ReceiptEvent {
  type: 'm.receipt';
  room_id: string;
  content: Json;
}

/**
 * How a user sees a room: joined (current state, up to now), departed (the state and
 * history up to their leave or ban), or peeking into a world_readable room (as joined, with
 * no membership to tell).
 */
type RoomView =
  | { kind: 'joined'; membership?: 'join' }
  | { kind: 'departed'; membership: 'leave' | 'ban'; eventId: string; streamPos: number };

/**
 * GET /initialSync and GET /rooms/{roomId}/initialSync (deprecated since r0, still served as
 * Synapse serves them): snapshots of the user's rooms. The timelines come from
 * RoomHistoryService's pages (history visibility applied), the other parts from the stores
 * /sync reads. Tokens are /sync tokens: `end` feeds GET /events, `messages.start` pages back
 * with /messages.
 */
@Injectable()
export class InitialSyncService {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(RoomReads) private readonly reads: RoomReads,
    @Inject(RoomHistoryService) private readonly history: RoomHistoryService,
    @Inject(SyncNotifier) private readonly notifier: SyncNotifier,
    @Inject(AccountDataService) private readonly accountData: AccountDataService,
    @Inject(ReceiptsService) private readonly receipts: ReceiptsService,
    @Inject(PresenceService) private readonly presence: PresenceService,
  ) {}

  /** GET /initialSync: joined and invited rooms (and, when archived, those left or banned from). */
  async snapshotAll(viewer: Viewer, q: { limit: number; archived: boolean }): Promise<Json> {
    const { userId } = viewer;
    const now = await this.now();
    const kinds = q.archived ? ['join', 'invite', 'leave', 'ban'] : ['join', 'invite'];
    const forgotten = q.archived ? await directoryStore.forgotten(this.db, userId) : new Map<string, number>();
    const memberships = (await getUserMemberships(this.db, userId, kinds)).filter(
      (m) => m.membership === 'join' || m.membership === 'invite' || (forgotten.get(m.roomId) ?? -1) < m.streamPos,
    );
    // Memberships committed after the position read: everything up to them is committed too.
    for (const m of memberships) if (m.streamPos > now.events) now.events = m.streamPos;
    const joined = memberships.filter((m) => m.membership === 'join').map((m) => m.roomId);
    const [published, accountData, receipts, presence] = await Promise.all([
      directoryStore.publishedRooms(this.db).then((ids) => new Set(ids)),
      this.accountData.getAccountDataSince(userId, 0),
      this.receipts.getReceiptsSince(joined, 0, userId),
      this.sharedPresence(userId),
    ]);

    const rooms: Json[] = [];
    for (const m of memberships) {
      const room: Json = { room_id: m.roomId, membership: m.membership, visibility: published.has(m.roomId) ? 'public' : 'private' };
      rooms.push(room);
      if (m.membership === 'invite') {
        const invite = await getEvent(this.db, m.eventId);
        if (invite) {
          room.inviter = invite.sender;
          room.invite = (await this.reads.toClientEvents([invite], viewer))[0];
        }
        continue;
      }
      const view: RoomView = m.membership === 'join' ? { kind: 'joined', membership: 'join' } : departedView(m);
      room.messages = await this.messages(viewer, m.roomId, view, now, q.limit);
      room.state = await this.state(viewer, m.roomId, view);
      room.account_data = accountData.rooms[m.roomId] ?? [];
    }
    return {
      rooms,
      presence,
      account_data: accountData.global,
      receipts: Object.entries(receipts.rooms).map(([roomId, content]): ReceiptEvent => ({ type: 'm.receipt', room_id: roomId, content })),
      end: encodeSyncToken(now),
    };
  }

  /** GET /rooms/{roomId}/initialSync: one room as the user may see it (403 when they may not). */
  async snapshotRoom(viewer: Viewer, roomId: string, q: { limit: number }): Promise<Json> {
    const view = await this.viewOf(viewer.userId, roomId);
    const now = await this.now();
    const joined = view.kind === 'joined';
    const [messages, state, presence, receipts, accountData] = await Promise.all([
      this.messages(viewer, roomId, view, now, q.limit),
      this.state(viewer, roomId, view),
      joined ? this.memberPresence(roomId) : [],
      joined ? this.receipts.getReceiptsSince([roomId], 0, viewer.userId) : undefined,
      this.accountData.getAccountDataSince(viewer.userId, 0),
    ]);
    const receiptContent = receipts?.rooms[roomId];
    const result: Json = { room_id: roomId };
    if (view.membership !== undefined) result.membership = view.membership;
    result.messages = messages;
    result.state = state;
    result.presence = presence;
    result.receipts = receiptContent ? [{ type: 'm.receipt', room_id: roomId, content: receiptContent } satisfies ReceiptEvent] : [];
    result.account_data = accountData.rooms[roomId] ?? ([] as AccountDataEvent[]);
    return result;
  }

  /** As Synapse: members see the room now, former members (left or banned) as they left it, anyone a world_readable room. */
  private async viewOf(userId: string, roomId: string): Promise<RoomView> {
    if (!(await getRoom(this.db, roomId))) throw forbidden(`You are not a member of ${roomId}`);
    const membership = await getUserMembershipInRoom(this.db, roomId, userId);
    if (membership?.membership === 'join') return { kind: 'joined', membership: 'join' };
    if (membership && (membership.membership === 'leave' || membership.membership === 'ban')) {
      return { kind: 'departed', membership: membership.membership, eventId: membership.eventId, streamPos: membership.streamPos };
    }
    const [hv] = await getCurrentStateEvents(this.db, roomId, ['m.room.history_visibility']);
    if (hv?.json.content?.history_visibility === 'world_readable') return { kind: 'joined' };
    throw forbidden(`You are not a member of ${roomId}`);
  }

  /** Every stream's position now (the log's read, not only what was heard of). */
  private async now(): Promise<SyncPositions> {
    await this.notifier.refreshKnown();
    const now = this.notifier.positions();
    now.events = Math.max(now.events, await getCurrentStreamPosition(this.db));
    return now;
  }

  /**
   * The latest `limit` events the user may see, up to now or to their leave, oldest first.
   * start: before the first of them (for /messages dir=b); end: where they end (for /events).
   */
  private async messages(viewer: Viewer, roomId: string, view: RoomView, now: SyncPositions, limit: number): Promise<{ chunk: ClientEvent[]; start: string; end: string }> {
    const endPos = view.kind === 'departed' ? view.streamPos : now.events;
    const page = limit > 0 ? await this.history.page(viewer.userId, roomId, { dir: 'b', from: endPos, limit }) : { events: [], next: endPos };
    const events = page.events.reverse();
    const startPos = events.length > 0 ? events[0]!.streamPos! - 1 : (page.next ?? 0);
    return {
      chunk: await this.reads.toClientEvents(events, viewer, true),
      start: encodeSyncToken({ ...now, events: startPos }),
      end: encodeSyncToken({ ...now, events: endPos }),
    };
  }

  /** The current state, or the state after the user's leave or ban. */
  private async state(viewer: Viewer, roomId: string, view: RoomView): Promise<ClientEvent[]> {
    let events: StoredEvent[];
    if (view.kind === 'joined') {
      events = await getCurrentStateEvents(this.db, roomId);
    } else {
      const triples = (await getStateAfterEvent(this.db, view.eventId)) ?? [];
      const found = await getEvents(this.db, triples.map(([, , id]) => id));
      events = triples.map(([, , id]) => found.get(id)).filter((e): e is StoredEvent => !!e);
    }
    return this.reads.toClientEvents(events, viewer);
  }

  /** Presence of the users sharing a room with this one (and their own), offline ones left out (as Synapse). */
  private async sharedPresence(userId: string): Promise<PresenceEvent[]> {
    const users = new Set(await getUsersSharingRooms(this.db, userId));
    users.add(userId);
    const { events } = await this.presence.getPresenceSince([...users], 0);
    return events.filter((e) => e.content.presence !== 'offline');
  }

  /** Presence of the room's joined members that have any. */
  private async memberPresence(roomId: string): Promise<PresenceEvent[]> {
    const { events } = await this.presence.getPresenceSince(await getRoomMembers(this.db, roomId, 'join'), 0);
    return events;
  }
}

function departedView(m: UserMembership): RoomView {
  return { kind: 'departed', membership: m.membership as 'leave' | 'ban', eventId: m.eventId, streamPos: m.streamPos };
}
