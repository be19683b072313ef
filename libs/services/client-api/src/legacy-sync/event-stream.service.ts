import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import {
  getCurrentStreamPosition, getEvent, getEvents, getMembershipChangesSince, getRoomsWithEventsBetween, getRoomTimeline, getUserMemberships,
  type Db, type StoredEvent,
} from '@tessera/storage';
import { PresenceService } from '../ephemeral/presence.service.js';
import { MatrixError, invalidParam, notFound } from '../errors.js';
import type { ClientEvent } from '../rooms/client-event.js';
import { RoomHistoryService, type Viewer } from '../rooms/room-history.service.js';
import { RoomReads } from '../rooms/room-reads.js';
import { SyncNotifier } from '../sync/sync-notifier.js';
import { decodeSyncToken, encodeSyncToken, SYNC_STREAMS, type SyncPositions } from '../sync-token.js';

export interface EventStreamRequest {
  viewer: Viewer;
  from?: string;
  timeoutMs: number;
  limit: number;
}

export interface EventStreamResponse {
  chunk: ClientEvent[];
  start: string;
  end: string;
}

/**
 * GET /events (deprecated since r0, still served as Synapse serves it): the room events of
 * the user's joined rooms and the user's own membership changes after `from`, oldest first,
 * at most `limit` of them; a long poll like /sync, woken by SyncNotifier, never by polling.
 *
 * Tokens are /sync tokens (initialSync's `end` feeds `from`; a /messages token is accepted
 * too). Only the events position moves: this stream carries room events alone, because the
 * spec's chunk is ClientEvents (Synapse also mixes in typing, receipts and presence there,
 * which the spec's schema does not allow).
 */
@Injectable()
export class EventStreamService {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(RoomReads) private readonly reads: RoomReads,
    @Inject(RoomHistoryService) private readonly history: RoomHistoryService,
    @Inject(SyncNotifier) private readonly notifier: SyncNotifier,
    @Inject(PresenceService) private readonly presence: PresenceService,
  ) {}

  async stream(req: EventStreamRequest): Promise<EventStreamResponse> {
    const { userId } = req.viewer;
    const start = await this.startPositions(req.from);
    // As Synapse: polling the event stream marks the user online.
    await this.markOnline(userId);
    const deadline = Date.now() + Math.max(0, req.timeoutMs);
    const startToken = encodeSyncToken(start);
    let cursor = start.events;
    let joined: string[] | undefined;
    for (let first = true; ; first = false) {
      const remaining = deadline - Date.now();
      // Register before looking (with the rooms of the last look; a new membership wakes the
      // user anyway): an event committed after the look wakes this wait.
      joined ??= (await getUserMemberships(this.db, userId, ['join'])).map((m) => m.roomId);
      const wait = remaining > 0 ? this.notifier.waitFor(userId, joined, remaining) : undefined;
      // A first look reads the log's position (the client may have just written); a woken one
      // knows it from the notification that woke it.
      let upTo = this.notifier.positions().events;
      if (first) upTo = Math.max(upTo, await getCurrentStreamPosition(this.db));
      const memberships = (this.notifier.recent.isCurrentAt(upTo) ? await this.notifier.recent.membershipsOf(userId) : undefined) ?? (await getUserMemberships(this.db, userId));
      // Memberships committed after the position read: everything up to them is committed too.
      for (const m of memberships) if (m.streamPos > upTo) upTo = m.streamPos;
      this.notifier.observe('events', upTo);
      joined = memberships.filter((m) => m.membership === 'join').map((m) => m.roomId);
      const found = await this.eventsBetween(req.viewer, joined, cursor, upTo, req.limit);
      // Nothing visible up to found.end: a later look starts there.
      cursor = found.end;
      if (found.chunk.length > 0 || !wait) {
        wait?.cancel();
        return { chunk: found.chunk, start: startToken, end: encodeSyncToken({ ...start, events: cursor }) };
      }
      // A full page all hidden by history visibility: look on at once.
      if (cursor < upTo) wait.cancel();
      else await wait.promise;
    }
  }

  /** GET /events/{eventId}: the event if the user may see it, else 404 (the spec's one answer for both). */
  async event(viewer: Viewer, eventId: string): Promise<ClientEvent> {
    const event = await getEvent(this.db, eventId);
    const missing = () => notFound(`Event ${eventId} not found, or not visible to you`);
    if (!event) throw missing();
    // The room's answer would name the room of an event the user may not know of.
    return this.history.event(viewer, event.roomId, eventId).catch((error: unknown) => {
      throw error instanceof MatrixError && error.status === 404 ? missing() : error;
    });
  }

  private async startPositions(from: string | undefined): Promise<SyncPositions> {
    if (from === undefined || from === '' || from === 'END') {
      // No token: from now on (Synapse takes "END" as the same, for old clients).
      const positions = this.notifier.positions();
      positions.events = Math.max(positions.events, await getCurrentStreamPosition(this.db));
      return positions;
    }
    const sync = decodeSyncToken(from);
    if (sync) {
      if (SYNC_STREAMS.some((s) => sync[s] > this.notifier.positions()[s])) await this.notifier.refreshKnown();
      return sync;
    }
    const match = /^t(\d{1,15})$/.exec(from);
    if (match) return { ...this.notifier.positions(), events: Number(match[1]) };
    throw invalidParam('"from" is not a token from /events, /initialSync or /sync of this server');
  }

  /**
   * Events in (after, upTo] of the joined rooms, and the user's own membership events (an
   * invite, a leave, a ban: rooms they are not joined to), the first `limit` in stream order,
   * then filtered by history visibility. `end`: where the next look starts.
   */
  private async eventsBetween(viewer: Viewer, joined: string[], after: number, upTo: number, limit: number): Promise<{ chunk: ClientEvent[]; end: number }> {
    if (upTo <= after) return { chunk: [], end: after };
    const joinedSet = new Set(joined);
    const changes = (await getMembershipChangesSince(this.db, viewer.userId, after, upTo)).filter((m) => !joinedSet.has(m.roomId));
    const ownMemberships = [...(await getEvents(this.db, changes.map((m) => m.eventId))).values()];
    const roomEvents = await this.roomEventsBetween(joined, after, upTo, limit);
    const byId = new Map<string, StoredEvent>();
    for (const e of [...roomEvents, ...ownMemberships]) if (e.streamPos !== null) byId.set(e.eventId, e);
    const ordered = [...byId.values()].sort((a, b) => a.streamPos! - b.streamPos!);
    const taken = ordered.slice(0, limit);
    const end = ordered.length > limit ? taken[taken.length - 1]!.streamPos! : upTo;

    const byRoom = new Map<string, StoredEvent[]>();
    for (const e of taken) (byRoom.get(e.roomId) ?? byRoom.set(e.roomId, []).get(e.roomId)!).push(e);
    const visible = new Set<string>();
    for (const [roomId, events] of byRoom) for (const e of await this.reads.visibleEvents(viewer.userId, roomId, events)) visible.add(e.eventId);
    const shown = taken.filter((e) => visible.has(e.eventId));
    return { chunk: await this.reads.toClientEvents(shown, viewer, true), end };
  }

  /** The first `limit` events of each room in (after, upTo]: from the notifier's recent stream when it covers them, else the log. */
  private async roomEventsBetween(rooms: string[], after: number, upTo: number, limit: number): Promise<StoredEvent[]> {
    if (rooms.length === 0) return [];
    const recent = this.notifier.recent.eventsBetween(after, upTo, new Set(rooms));
    if (recent) {
      const counted = new Map<string, number>();
      const firsts = recent.filter((n) => {
        const count = (counted.get(n.roomId) ?? 0) + 1;
        counted.set(n.roomId, count);
        return count <= limit;
      });
      const events = await this.notifier.recent.storedEvents(firsts);
      if (events) return events;
    }
    const withEvents = await getRoomsWithEventsBetween(this.db, rooms, after, upTo);
    const perRoom = await Promise.all(withEvents.map((roomId) => getRoomTimeline(this.db, roomId, { direction: 'f', from: after, to: upTo, limit })));
    return perRoom.flat();
  }

  private async markOnline(userId: string): Promise<void> {
    const current = await this.presence.current(userId).catch(() => undefined);
    if (current && current.presence !== 'online') await this.presence.setStatus(userId, userId, { presence: 'online' }).catch(() => undefined);
  }
}
