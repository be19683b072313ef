import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import { getEvents, getRelatedEvents, type Db, type StoredEvent } from '@tessera/storage';
import { RoomReads } from '../rooms/room-reads.js';

/** Rounds of fetching when history visibility drops events, before answering with fewer. */
const MAX_FETCH_ROUNDS = 10;

export interface RelationPageQuery {
  relType?: string;
  eventType?: string;
  /** 1: direct children; more: children of children too, up to that many relations away. */
  maxDepth: number;
  dir: 'b' | 'f';
  /** A stream point: backwards reads the events at or before it, forwards those after it. */
  from?: number;
  /** A stream point where the page stops (as /messages reads `to`). */
  to?: number;
  limit: number;
}

/** Pages of an event's children that the user may see (history visibility as /messages applies it). */
@Injectable()
export class RelationPages {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(RoomReads) private readonly reads: RoomReads,
  ) {}

  /** The children and the stream point after the last one looked at (`next`; null when nothing is left). */
  async visibleChildren(userId: string, roomId: string, parentId: string, q: RelationPageQuery): Promise<{ events: StoredEvent[]; next: number | null }> {
    // Stream point p: backwards reads positions <= p (strictly below p + 1), forwards positions > p.
    let cursor = q.from === undefined ? undefined : q.dir === 'b' ? q.from + 1 : q.from;
    const events: StoredEvent[] = [];
    if (q.limit === 0) return { events, next: q.from ?? null };
    for (let round = 0; round < MAX_FETCH_ROUNDS && events.length < q.limit; round++) {
      const want = q.limit - events.length;
      // One more than wanted says whether anything is left after this page.
      const refs = await getRelatedEvents(this.db, roomId, parentId, {
        relType: q.relType, eventType: q.eventType, maxDepth: q.maxDepth, direction: q.dir, from: cursor, to: q.to, limit: want + 1,
      });
      const page = refs.slice(0, want);
      if (page.length === 0) return { events, next: null };
      const found = await getEvents(this.db, page.map((r) => r.eventId));
      const stored = page.map((r) => found.get(r.eventId)).filter((e): e is StoredEvent => !!e);
      events.push(...(await this.reads.visibleEvents(userId, roomId, stored)));
      cursor = page[page.length - 1]!.streamPos;
      if (refs.length <= want) return { events, next: null };
    }
    return { events, next: q.dir === 'b' ? cursor! - 1 : cursor! };
  }

  /** The latest child of this rel type the user may see. */
  async latestVisible(userId: string, roomId: string, parentId: string, relType: string): Promise<StoredEvent | undefined> {
    return (await this.visibleChildren(userId, roomId, parentId, { relType, maxDepth: 1, dir: 'b', limit: 1 })).events[0];
  }
}
