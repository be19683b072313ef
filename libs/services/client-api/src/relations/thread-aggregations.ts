import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import { getEvents, getThreadSummaries, type Db, type StoredEvent } from '@tessera/storage';
import type { ClientEvent } from '../rooms/client-event.js';
import { RoomReads } from '../rooms/room-reads.js';
import { RelationPages } from './relation-pages.js';

/**
 * The server-side aggregation of m.thread relationships (spec "Server-side aggregation of
 * m.thread relationships"): unsigned["m.relations"]["m.thread"] of a thread root holds the
 * latest reply the user may see, the number of replies, and whether the user took part
 * (sent the root or a reply).
 */
@Injectable()
export class ThreadAggregations {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(RoomReads) private readonly reads: RoomReads,
    @Inject(RelationPages) private readonly pages: RelationPages,
  ) {}

  /**
   * Adds the m.thread aggregation to the client events `chunk` of `roots` (same order): those
   * of them with thread replies.
   */
  async bundle(
    viewer: { userId: string; deviceId: string },
    roomId: string,
    roots: StoredEvent[],
    chunk: ClientEvent[],
  ): Promise<void> {
    const summaries = await getThreadSummaries(this.db, roomId, roots.map((r) => r.eventId), viewer.userId);
    if (summaries.size === 0) return;
    const latestIds = [...summaries.values()].map((s) => s.latestEventId);
    const found = await getEvents(this.db, latestIds);
    const visible = new Set((await this.reads.visibleEvents(viewer.userId, roomId, [...found.values()])).map((e) => e.eventId));
    const latest = new Map<string, StoredEvent>();
    for (const [rootId, s] of summaries) {
      // When the latest reply is hidden from the user, the latest one they may see.
      const event = visible.has(s.latestEventId) ? found.get(s.latestEventId) : await this.pages.latestVisible(viewer.userId, roomId, rootId, 'm.thread');
      if (event) latest.set(rootId, event);
    }
    const rootIds = [...latest.keys()];
    const formatted = await this.reads.toClientEvents(rootIds.map((id) => latest.get(id)!), viewer, true);
    const latestEvent = new Map(rootIds.map((id, i) => [id, formatted[i]!]));
    roots.forEach((root, i) => {
      const summary = summaries.get(root.eventId);
      const event = latestEvent.get(root.eventId);
      if (!summary || !event) return;
      const unsigned = (chunk[i]!.unsigned ??= {});
      const relations = (unsigned['m.relations'] ??= {}) as Record<string, unknown>;
      relations['m.thread'] = {
        latest_event: event,
        count: summary.count,
        current_user_participated: summary.userReplied || root.sender === viewer.userId,
      };
    });
  }
}
