import type { PushEvaluation } from '@tessera/protocol';

/** Entries kept before the cache starts over (each is a few numbers). */
const MAX_ENTRIES = 200_000;

/** The partition of the main timeline; threads are keyed by their root event id. */
export const MAIN_TIMELINE = 'main';

export interface Tally {
  notification_count: number;
  highlight_count: number;
}

/**
 * A user's unread counts in one room, per partition (spec "Receiving notifications": with
 * threaded read receipts the count is split per thread, the main timeline being its own).
 */
export class RoomTally {
  readonly byThread = new Map<string, Tally>();

  /** `position`: the stream position the counts are true at. */
  constructor(public position: number) {}

  add(threadId: string, evaluation: Pick<PushEvaluation, 'notify' | 'highlight'>): void {
    if (!evaluation.notify && !evaluation.highlight) return;
    let t = this.byThread.get(threadId);
    if (!t) this.byThread.set(threadId, (t = { notification_count: 0, highlight_count: 0 }));
    if (evaluation.notify) t.notification_count++;
    if (evaluation.highlight) t.highlight_count++;
  }

  copy(position: number): RoomTally {
    const c = new RoomTally(position);
    for (const [k, v] of this.byThread) c.byThread.set(k, { ...v });
    return c;
  }

  main(): Tally {
    return { notification_count: 0, highlight_count: 0, ...this.byThread.get(MAIN_TIMELINE) };
  }

  total(): Tally {
    const sum = { notification_count: 0, highlight_count: 0 };
    for (const t of this.byThread.values()) {
      sum.notification_count += t.notification_count;
      sum.highlight_count += t.highlight_count;
    }
    return sum;
  }

  /** Threads with something unread (unread_thread_notifications). */
  threads(): Record<string, Tally> {
    const out: Record<string, Tally> = {};
    for (const [k, v] of this.byThread) if (k !== MAIN_TIMELINE) out[k] = { ...v };
    return out;
  }
}

/** The thread an event belongs to: the root of its m.thread relation, else the main timeline. */
export function threadOf(event: { content?: unknown }): string {
  const content = event.content as Record<string, unknown> | undefined;
  const relation = content?.['m.relates_to'] as Record<string, unknown> | undefined;
  return relation?.rel_type === 'm.thread' && typeof relation.event_id === 'string' ? relation.event_id : MAIN_TIMELINE;
}

/**
 * Adds events (oldest first) to a tally: an event of someone else counts as its push rules
 * say; the user's own event resets the counts as an unthreaded receipt would (writing in a
 * room means having read it, spec "Marking notifications as read": "either by using the API
 * or by sending an event").
 * `readUpTo` (optional) skips what the user's receipts already cover per partition.
 */
export function tallyEvents(
  tally: RoomTally,
  userId: string,
  events: ReadonlyArray<{ streamPos: number | null; sender: string; json: Record<string, unknown> }>,
  evaluate: (event: Record<string, unknown>) => Pick<PushEvaluation, 'notify' | 'highlight'>,
  readUpTo: (threadId: string) => number = () => 0,
): RoomTally {
  for (const e of events) {
    const thread = threadOf(e.json);
    if ((e.streamPos ?? 0) <= readUpTo(thread)) continue;
    if (e.sender === userId) tally.byThread.clear();
    else tally.add(thread, evaluate(e.json));
  }
  return tally;
}

/**
 * Unread notification counts per user and room, carried forward from the event
 * notifications so that a woken /sync does not count in the database (NotificationCounter).
 * A read receipt drops its user's counts in the room; the next /sync counts again from the
 * database.
 */
export class UnreadCounts {
  private readonly byRoom = new Map<string, Map<string, RoomTally>>();
  private size = 0;
  /** Per room, counts receipts moving: a count begun before one is not remembered (it may predate the receipt). */
  private readonly forgets = new Map<string, number>();

  /** Taken before counting; remember() drops a count whose stamp is stale. */
  stamp(roomId: string): number {
    return this.forgets.get(roomId) ?? 0;
  }

  get(userId: string, roomId: string): RoomTally | undefined {
    return this.byRoom.get(roomId)?.get(userId);
  }

  remember(userId: string, roomId: string, tally: RoomTally, stamp: number): void {
    if (stamp !== this.stamp(roomId)) return;
    let room = this.byRoom.get(roomId);
    if (!room) this.byRoom.set(roomId, (room = new Map()));
    if (!room.has(userId)) this.size++;
    room.set(userId, tally);
    if (this.size > MAX_ENTRIES) {
      this.byRoom.clear();
      this.forgets.clear();
      this.size = 0;
    }
  }

  /** A receipt of the user (unknown: of anyone) moved in the room: those counts start over from the database. */
  forget(roomId: string, userId?: string): void {
    this.forgets.set(roomId, this.stamp(roomId) + 1);
    const room = this.byRoom.get(roomId);
    if (!room) return;
    if (userId === undefined) {
      this.size -= room.size;
      this.byRoom.delete(roomId);
    } else if (room.delete(userId)) {
      this.size--;
    }
  }
}
