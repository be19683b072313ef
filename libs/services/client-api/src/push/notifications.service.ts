import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import type { PushEvaluation } from '@tessera/protocol';
import { getCurrentStreamPosition, getEvents, getUserMembershipHistory, getUserMemberships, type Db, type StoredEvent } from '@tessera/storage';
import type { Requester } from '../auth/access-tokens.service.js';
import { invalidParam } from '../errors.js';
import { RoomReads } from '../rooms/room-reads.js';
import { NotificationCounter } from '../sync/notification-counter.js';
import { MAIN_TIMELINE, threadOf } from '../sync/unread-counts.js';

const DEFAULT_LIMIT = 50;
/** As Synapse: a larger limit is cut to this. */
const MAX_LIMIT = 500;
/**
 * The bound of one request's scan: at most this many events of others in the user's joined
 * rooms, newest first, are evaluated. When the page is not full by then, next_token points
 * at where the scan stopped, so the client pages on further back at the same cost per request.
 */
const MAX_SCANNED_EVENTS = 1000;
const SCAN_BATCH = 250;

export interface NotificationsQuery {
  from?: string;
  limit?: number;
  only?: string;
}

export interface Notification {
  actions: unknown[];
  event: Record<string, unknown>;
  read: boolean;
  room_id: string;
  ts: number;
}

interface Found {
  event: StoredEvent;
  evaluation: PushEvaluation;
}

/**
 * GET /notifications (spec "Push notifications: Listing notifications"): the events that
 * notified the user by their push rules, newest first.
 *
 * Computed on request rather than stored when events arrive (Synapse's event_push_actions):
 * the timelines of the rooms the user is joined to now are scanned newest first (bounded by
 * MAX_SCANNED_EVENTS per request) and each event of someone else that arrived while the user
 * was joined (or that invited them) is evaluated with their push rules, against the room's
 * current state as /sync's unread counts are (NotificationCounter). Rooms the user has since
 * left are not listed. `ts` is the event's origin_server_ts (no arrival time is stored).
 * The pagination token is the stream position below which the next page starts.
 */
@Injectable()
export class NotificationsService {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(RoomReads) private readonly reads: RoomReads,
    @Inject(NotificationCounter) private readonly counter: NotificationCounter,
  ) {}

  async list(requester: Requester, q: NotificationsQuery): Promise<{ notifications: Notification[]; next_token?: string }> {
    const before = q.from === undefined ? undefined : parseToken(q.from);
    const limit = Math.min(q.limit ?? DEFAULT_LIMIT, MAX_LIMIT);
    if (!Number.isSafeInteger(limit) || limit < 0) throw invalidParam('"limit" must be a non-negative integer');
    if (limit === 0) return { notifications: [], ...(q.from !== undefined ? { next_token: q.from } : {}) };
    const userId = requester.userId;
    const roomIds = (await getUserMemberships(this.db, userId, ['join'])).map((m) => m.roomId);
    if (roomIds.length === 0) return { notifications: [] };

    const upTo = await getCurrentStreamPosition(this.db);
    const { found, next } = await this.scan(userId, roomIds, before ?? upTo + 1, upTo, limit, q.only === 'highlight');
    const readUpTo = await this.readPositions(userId, [...new Set(found.map((f) => f.event.roomId))]);
    const clientEvents = await this.reads.toClientEvents(
      found.map((f) => f.event),
      requester,
      true,
    );
    const notifications = found.map(({ event, evaluation }, i): Notification => {
      // The spec's Notification carries the event without room_id (ClientEventWithoutRoomID).
      const { room_id: _roomId, ...withoutRoomId } = clientEvents[i]!;
      return {
        actions: evaluation.actions,
        event: withoutRoomId,
        read: (event.streamPos ?? 0) <= readUpTo(event.roomId, threadOf(event.json)),
        room_id: event.roomId,
        ts: event.originServerTs,
      };
    });
    return next === undefined ? { notifications } : { notifications, next_token: String(next) };
  }

  /** The newest notifying events below `before`; `next`: where the following page starts (absent at the start of history). */
  private async scan(
    userId: string,
    roomIds: string[],
    before: number,
    upTo: number,
    limit: number,
    onlyHighlight: boolean,
  ): Promise<{ found: Found[]; next?: number }> {
    const found: Found[] = [];
    const histories = new Map<string, Promise<Array<{ streamPos: number; membership: string }>>>();
    const evaluators = new Map<string, ReturnType<NotificationCounter['evaluator']>>();
    let cursor = before;
    let scanned = 0;
    while (scanned < MAX_SCANNED_EVENTS) {
      const want = Math.min(SCAN_BATCH, MAX_SCANNED_EVENTS - scanned);
      const batch = await this.othersEventsBefore(userId, roomIds, cursor, upTo, want);
      for (const event of batch) {
        const pos = event.streamPos!;
        let history = histories.get(event.roomId);
        if (!history) histories.set(event.roomId, (history = getUserMembershipHistory(this.db, event.roomId, userId)));
        if (!wasJoinedOrInvited(await history, pos, event, userId)) continue;
        let evaluate = evaluators.get(event.roomId);
        if (!evaluate) evaluators.set(event.roomId, (evaluate = this.counter.evaluator(userId, event.roomId, upTo)));
        const evaluation = (await evaluate)(event.json);
        if (!evaluation.notify || (onlyHighlight && !evaluation.highlight)) continue;
        found.push({ event, evaluation });
        if (found.length === limit) return { found, next: pos };
      }
      scanned += batch.length;
      if (batch.length < want) return { found };
      cursor = batch[batch.length - 1]!.streamPos!;
    }
    return { found, next: cursor };
  }

  /** Timeline events of others in these rooms, positions in [.., before) and <= upTo, newest first. */
  private async othersEventsBefore(userId: string, roomIds: string[], before: number, upTo: number, limit: number): Promise<StoredEvent[]> {
    const { rows } = await this.db.query<{ event_id: string }>(
      `SELECT e.event_id FROM events e JOIN rooms r ON r.room_nid = e.room_nid
        WHERE r.room_id = ANY($1::text[]) AND e.stream_pos IS NOT NULL AND e.stream_pos < $2 AND e.stream_pos <= $3 AND e.sender <> $4
        ORDER BY e.stream_pos DESC LIMIT $5`,
      [roomIds, before, upTo, userId, limit],
    );
    const events = await getEvents(
      this.db,
      rows.map((r) => r.event_id),
    );
    return rows.map((r) => events.get(r.event_id)).filter((e): e is StoredEvent => e !== undefined && e.streamPos !== null);
  }

  /**
   * How far the user's read receipts (m.read and m.read.private) reach per room and thread:
   * an unthreaded receipt covers every thread, a threaded one (thread "main" or a root) its own.
   */
  private async readPositions(userId: string, roomIds: string[]): Promise<(roomId: string, thread: string) => number> {
    const receipts = new Map<string, number>();
    if (roomIds.length > 0) {
      const { rows } = await this.db.query<{ room_id: string; thread_id: string; pos: string | number }>(
        `SELECT rc.room_id, rc.thread_id, MAX(e.stream_pos) AS pos FROM receipts rc JOIN events e ON e.event_id = rc.event_id
          WHERE rc.user_id = $1 AND rc.room_id = ANY($2::text[]) AND rc.receipt_type IN ('m.read', 'm.read.private') AND e.stream_pos IS NOT NULL
          GROUP BY rc.room_id, rc.thread_id`,
        [userId, roomIds],
      );
      for (const r of rows) receipts.set(`${r.room_id}\u0000${r.thread_id}`, Number(r.pos));
    }
    return (roomId, thread) =>
      Math.max(receipts.get(`${roomId}\u0000`) ?? 0, receipts.get(`${roomId}\u0000${thread === MAIN_TIMELINE ? 'main' : thread}`) ?? 0);
  }
}

/** A `from` token: a stream position (what next_token gave). */
function parseToken(token: string): number {
  if (!/^\d{1,15}$/.test(token)) throw invalidParam(`"from" is not a token this server gave: ${token}`);
  return Number(token);
}

/**
 * Whether the event reached the user as a member: their membership just before it (the last
 * change of it earlier in the stream) was join; or the event is their own invite.
 */
function wasJoinedOrInvited(history: ReadonlyArray<{ streamPos: number; membership: string }>, pos: number, event: StoredEvent, userId: string): boolean {
  if (event.type === 'm.room.member' && event.stateKey === userId) return (event.json.content as Record<string, unknown> | undefined)?.membership === 'invite';
  let membership = 'leave';
  for (const h of history) {
    if (Number(h.streamPos) >= pos) break;
    membership = h.membership;
  }
  return membership === 'join';
}
