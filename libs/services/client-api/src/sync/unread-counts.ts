import type { StreamEventNotification } from '@tessera/bus';

/** Types counted as notifications when no push rule evaluation is available (the default rules notify for these). */
export const NOTIFYING_TYPES = ['m.room.message', 'm.room.encrypted', 'm.sticker'];

/** Entries kept before the cache starts over (each is a few numbers). */
const MAX_ENTRIES = 200_000;

interface Count {
  count: number;
  /** The stream position the count is true at. */
  position: number;
}

/**
 * Unread notification counts per user and room, carried forward from the event notifications
 * so that a woken /sync does not count in the database: a message of a notifying type from
 * someone else adds one, the user's own event resets to zero (the user has read the room up
 * to what they wrote). A read receipt in the room drops the room's counts; the next /sync
 * counts again from the database.
 */
export class UnreadCounts {
  private readonly byRoom = new Map<string, Map<string, Count>>();
  private size = 0;

  /**
   * The count at `upTo`, from a known count and the room's events since it; undefined when
   * no count is known or `events` (the room's notifications after the known position up to
   * `upTo`) cannot be had.
   */
  carryForward(userId: string, roomId: string, upTo: number, eventsAfter: (position: number) => StreamEventNotification[] | undefined): number | undefined {
    const known = this.byRoom.get(roomId)?.get(userId);
    if (!known || known.position > upTo) return undefined;
    if (known.position === upTo) return known.count;
    const events = eventsAfter(known.position);
    if (!events) return undefined;
    let count = known.count;
    for (const e of events) {
      if (e.sender === userId) count = 0;
      else if (NOTIFYING_TYPES.includes(e.type)) count++;
    }
    known.count = count;
    known.position = upTo;
    return count;
  }

  remember(userId: string, roomId: string, position: number, count: number): void {
    let room = this.byRoom.get(roomId);
    if (!room) this.byRoom.set(roomId, (room = new Map()));
    if (!room.has(userId)) this.size++;
    room.set(userId, { count, position });
    if (this.size > MAX_ENTRIES) {
      this.byRoom.clear();
      this.size = 0;
    }
  }

  /** A receipt moved in the room: its counts start over from the database. */
  forgetRoom(roomId: string): void {
    this.size -= this.byRoom.get(roomId)?.size ?? 0;
    this.byRoom.delete(roomId);
  }
}
