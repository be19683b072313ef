import type { StreamEventNotification } from '@tessera/bus';
import { getEvents, getUserMemberships, type Db, type StoredEvent, type UserMembership } from '@tessera/storage';

/** How many recent stream.events notifications are kept (each with its event once loaded). */
const CAPACITY = 4096;
/** Entries past CAPACITY before the oldest are dropped, all at once: dropping one per append moved the whole array each time. */
const DROP_BATCH = 256;
/** Out-of-order notifications held while waiting for the one before them; beyond this the chain is restarted. */
const MAX_PENDING = 256;
/** Users whose joined rooms are kept (least recently used dropped first). */
const MAX_USERS = 50_000;
/** How long a notification waits for the one before it; then that one is taken as lost. */
const GAP_WAIT_MS = 2000;
/** Rooms whose own floor is remembered (least recently changed dropped first: they fall back to the copy's floor). */
const MAX_ROOMS = 100_000;

interface Entry {
  n: StreamEventNotification;
  /** Loaded once, shared by every /sync that needs it; dropped when the event is redacted. */
  event?: Promise<StoredEvent | undefined>;
}

/**
 * One room's part of the copy: its entries in position order, complete for (floor, complete].
 * A room's floor is the position of its last entry that went out of the copy (or where the
 * copy started): a quiet room stays covered from long ago while busy rooms push the copy's
 * own floor up, so a /sync of a user whose rooms are quiet does not fall back to the database.
 */
interface RoomPart {
  floor: number;
  entries: Entry[];
}

/**
 * An in-memory copy of the recent event stream, so that a woken /sync answers without the
 * database (DESIGN step 5: the notification carries what changed).
 *
 * It holds the last notifications in position order and knows the range it is complete for:
 * every announced event with a position in (floor, complete] is here. The chain of
 * `previousPosition` links proves completeness; a notification that does not follow is held
 * until the missing one arrives, and if it never does, the copy restarts after it. A /sync
 * whose window is not inside (floor, complete] reads the database, as before; so the cache
 * is never the only copy of anything.
 *
 * It also keeps each user's memberships current from the membership notifications (the
 * user's joined rooms without a query per /sync).
 */
export class RecentTimeline {
  private readonly entries: Entry[] = [];
  private readonly byEventId = new Map<string, Entry>();
  private readonly pending = new Map<number, StreamEventNotification>();
  /** room -> its entries and floor; a room not here is covered from the copy's floor. */
  private readonly rooms = new Map<string, RoomPart>();
  private floor = 0;
  private complete = 0;
  private started = false;
  /** user -> room -> membership, as of `complete`. */
  private readonly memberships = new Map<string, Map<string, UserMembership>>();
  private readonly loadingMemberships = new Map<string, Promise<Map<string, UserMembership>>>();
  private readonly missing = new Set<string>();
  private batch: Promise<Map<string, StoredEvent>> | undefined;
  private gapTimer: NodeJS.Timeout | undefined;

  constructor(private readonly db: Db) {}

  /** Starts the chain at the log's current position (on start, before any notification). */
  start(position: number): void {
    if (this.started) return;
    this.started = true;
    this.floor = this.complete = position;
  }

  /** The range this copy is complete for: (floor, complete]. */
  range(): { floor: number; complete: number } {
    return { floor: this.floor, complete: this.complete };
  }

  covers(after: number, upTo: number): boolean {
    return this.started && after >= this.floor && upTo <= this.complete;
  }

  add(n: StreamEventNotification): void {
    if (!this.started) return;
    if (n.position <= this.complete) return; // a repeat
    if (n.previousPosition > this.complete) {
      // Another writer's earlier notification may still be on its way: hold this one a while.
      this.pending.set(n.previousPosition, n);
      if (this.pending.size > MAX_PENDING) this.restartAfterGap();
      else this.gapTimer ??= setTimeout(() => this.restartAfterGap(), GAP_WAIT_MS).unref();
      return;
    }
    this.append(n);
    this.appendPending();
  }

  private appendPending(): void {
    for (let next = this.pending.get(this.complete); next; next = this.pending.get(this.complete)) {
      this.pending.delete(next.previousPosition);
      this.append(next);
    }
    if (this.pending.size === 0 && this.gapTimer) {
      clearTimeout(this.gapTimer);
      this.gapTimer = undefined;
    }
  }

  private append(n: StreamEventNotification): void {
    const entry: Entry = { n };
    this.entries.push(entry);
    this.byEventId.set(n.eventId, entry);
    let room = this.rooms.get(n.roomId);
    if (room) this.rooms.delete(n.roomId); // re-inserted last: the map's order is least recently changed first
    room ??= { floor: this.floor, entries: [] };
    room.entries.push(entry);
    this.rooms.set(n.roomId, room);
    if (this.rooms.size > MAX_ROOMS) {
      // The least recently changed room: with MAX_ROOMS above CAPACITY its entries are all gone,
      // so the copy's floor (at or above its own) still covers it rightly.
      const [oldest, part] = this.rooms.entries().next().value!;
      if (part.entries.length === 0) this.rooms.delete(oldest);
    }
    this.complete = n.position;
    if (n.redacts) {
      const redacted = this.byEventId.get(n.redacts);
      if (redacted) redacted.event = undefined;
    }
    if (n.membership) {
      const rooms = this.memberships.get(n.membership.userId);
      rooms?.set(n.roomId, { roomId: n.roomId, userId: n.membership.userId, membership: n.membership.membership, eventId: n.eventId, streamPos: n.position });
    }
    if (this.entries.length > CAPACITY + DROP_BATCH) {
      const dropped = this.entries.splice(0, this.entries.length - CAPACITY);
      for (const d of dropped) {
        this.byEventId.delete(d.n.eventId);
        const room = this.rooms.get(d.n.roomId);
        // A room's entries go in the order they came (the copy's order), so a dropped one is its first.
        if (room?.entries[0] === d) {
          room.entries.shift();
          room.floor = d.n.position;
        }
      }
      this.floor = dropped[dropped.length - 1]!.n.position;
    }
  }

  /**
   * A notification was lost (or never came): what came before the held ones is unknown, so
   * the copy starts again at the first held one. Memberships may have missed a change: dropped.
   */
  private restartAfterGap(): void {
    clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
    if (this.pending.size === 0) return;
    const first = Math.min(...this.pending.keys());
    this.entries.length = 0;
    this.byEventId.clear();
    this.rooms.clear();
    this.memberships.clear();
    this.floor = this.complete = first;
    this.appendPending();
    // Held ones after another hole wait their turn (a new timer).
    if (this.pending.size > 0) this.gapTimer = setTimeout(() => this.restartAfterGap(), GAP_WAIT_MS).unref();
  }

  stop(): void {
    clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
  }

  /** Whether the copy is current up to this position (so a /sync at it may use it). */
  isCurrentAt(position: number): boolean {
    return this.started && position <= this.complete;
  }

  /**
   * Notifications of these rooms in (after, upTo], oldest first; undefined when not covered.
   * With rooms named, each room needs only its own floor at or below `after`; the work is that
   * of the smaller of the window and the rooms' own entries in it.
   */
  eventsBetween(after: number, upTo: number, rooms?: ReadonlySet<string>): StreamEventNotification[] | undefined {
    if (!this.started || upTo > this.complete) return undefined;
    if (rooms && (after < this.floor || rooms.size < firstAfter(this.entries, upTo) - firstAfter(this.entries, after))) return this.roomsBetween(after, upTo, rooms);
    if (after < this.floor) return undefined;
    const out: StreamEventNotification[] = [];
    for (let i = firstAfter(this.entries, after); i < this.entries.length; i++) {
      const n = this.entries[i]!.n;
      if (n.position > upTo) break;
      if (!rooms || rooms.has(n.roomId)) out.push(n);
    }
    return out;
  }

  /** eventsBetween room by room. */
  private roomsBetween(after: number, upTo: number, rooms: ReadonlySet<string>): StreamEventNotification[] | undefined {
    const out: StreamEventNotification[] = [];
    let sorted = true;
    for (const roomId of rooms) {
      const room = this.rooms.get(roomId);
      if (after < (room?.floor ?? this.floor)) return undefined;
      if (!room) continue;
      const before = out.length;
      for (let i = firstAfter(room.entries, after); i < room.entries.length; i++) {
        const n = room.entries[i]!.n;
        if (n.position > upTo) break;
        out.push(n);
      }
      if (before > 0 && out.length > before) sorted = false;
    }
    return sorted ? out : out.sort((a, b) => a.position - b.position);
  }

  notification(eventId: string): StreamEventNotification | undefined {
    return this.byEventId.get(eventId)?.n;
  }

  /** The stored events of these notifications (one query for all the /syncs asking at once). */
  async storedEvents(notifications: readonly StreamEventNotification[]): Promise<StoredEvent[] | undefined> {
    const loads: Array<Promise<StoredEvent | undefined>> = [];
    for (const n of notifications) {
      const entry = this.byEventId.get(n.eventId);
      if (!entry) return undefined;
      entry.event ??= this.load(n.eventId);
      loads.push(entry.event);
    }
    const events = await Promise.all(loads);
    return events.every((e): e is StoredEvent => e !== undefined) ? events : undefined;
  }

  /** Loads events in batches: the ids asked for while a batch is being read go in the next one. */
  private load(eventId: string): Promise<StoredEvent | undefined> {
    this.missing.add(eventId);
    this.batch ??= Promise.resolve().then(() => {
      const ids = [...this.missing];
      this.missing.clear();
      this.batch = undefined;
      return getEvents(this.db, ids);
    });
    return this.batch.then((found) => found.get(eventId));
  }

  /**
   * The user's memberships as of `complete` (loaded once, then kept current from the
   * notifications). Undefined while the copy cannot vouch for them.
   */
  async membershipsOf(userId: string): Promise<UserMembership[] | undefined> {
    let rooms = this.memberships.get(userId);
    if (!rooms) {
      const loading = this.loadingMemberships.get(userId) ?? this.loadMemberships(userId);
      rooms = await loading;
    } else {
      // Least recently used goes first when the map is full.
      this.memberships.delete(userId);
      this.memberships.set(userId, rooms);
    }
    return [...rooms.values()].sort((a, b) => a.streamPos - b.streamPos);
  }

  private loadMemberships(userId: string): Promise<Map<string, UserMembership>> {
    const from = this.complete;
    const promise = getUserMemberships(this.db, userId)
      .then((list) => {
        const rooms = new Map(list.map((m) => [m.roomId, m]));
        // Changes announced while the query ran may or may not be in its answer: apply them.
        for (const n of this.eventsBetween(from, this.complete) ?? []) {
          if (n.membership?.userId !== userId) continue;
          const known = rooms.get(n.roomId);
          if (!known || known.streamPos < n.position) {
            rooms.set(n.roomId, { roomId: n.roomId, userId, membership: n.membership.membership, eventId: n.eventId, streamPos: n.position });
          }
        }
        if (this.covers(from, this.complete)) {
          this.memberships.set(userId, rooms);
          if (this.memberships.size > MAX_USERS) this.memberships.delete(this.memberships.keys().next().value!);
        }
        return rooms;
      })
      .finally(() => this.loadingMemberships.delete(userId));
    this.loadingMemberships.set(userId, promise);
    return promise;
  }
}

/** The index of the first entry after `position` (entries in position order). */
function firstAfter(entries: readonly Entry[], position: number): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (entries[mid]!.n.position <= position) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
