import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import { getChildrenOfType, getEvents, type Db, type StoredEvent } from '@tessera/storage';
import type { ClientEvent } from '../rooms/client-event.js';
import { RoomReads } from '../rooms/room-reads.js';
import { ThreadAggregations } from './thread-aggregations.js';

type Viewer = { userId: string; deviceId: string };

function relationsOf(event: ClientEvent): Record<string, unknown> {
  const unsigned = (event.unsigned ??= {});
  return (unsigned['m.relations'] ??= {}) as Record<string, unknown>;
}

function relTypeOf(event: StoredEvent): unknown {
  const relatesTo = event.json.content?.['m.relates_to'];
  return typeof relatesTo === 'object' && relatesTo !== null ? relatesTo.rel_type : undefined;
}

/**
 * Bundled aggregations (spec "Aggregations of child events"): unsigned["m.relations"] of the
 * events a client reads, with m.thread (thread summary), m.replace (the most recent valid edit,
 * as a full event) and m.reference (the ids of the referencing events), counting only the
 * children the user may see. As Synapse, state events and redacted events carry none.
 */
@Injectable()
export class BundledAggregations {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(RoomReads) private readonly reads: RoomReads,
    @Inject(ThreadAggregations) private readonly threads: ThreadAggregations,
  ) {}

  /** Adds the aggregations to `chunk`, the client form of `events` (same order), all of `roomId`. */
  async bundle(viewer: Viewer, roomId: string, events: StoredEvent[], chunk: ClientEvent[]): Promise<void> {
    const picked = events.flatMap((e, i) => (e.stateKey === null && !e.redactedBy && e.roomId === roomId ? [i] : []));
    if (picked.length === 0) return;
    const parents = picked.map((i) => events[i]!);
    const formatted = picked.map((i) => chunk[i]!);
    await this.threads.bundle(viewer, roomId, parents, formatted);
    await this.replacements(viewer, roomId, parents, formatted);
    await this.references(viewer, roomId, parents, formatted);
  }

  /** Children of these parents with this rel_type that the user may see, by parent, in stream order. */
  private async visibleChildren(viewer: Viewer, roomId: string, parents: StoredEvent[], relType: string): Promise<Map<string, StoredEvent[]>> {
    const refs = await getChildrenOfType(this.db, roomId, parents.map((p) => p.eventId), relType);
    const byParent = new Map<string, StoredEvent[]>();
    if (refs.length === 0) return byParent;
    const found = await getEvents(this.db, refs.map((r) => r.eventId));
    const visible = new Set((await this.reads.visibleEvents(viewer.userId, roomId, [...found.values()])).map((e) => e.eventId));
    for (const r of refs) {
      const child = found.get(r.eventId);
      if (!child || !visible.has(r.eventId)) continue;
      byParent.set(r.parentId, [...(byParent.get(r.parentId) ?? []), child]);
    }
    return byParent;
  }

  /**
   * m.replace: the most recent valid replacement (origin_server_ts, then the larger event id).
   * Valid per "Validity of replacement events": same type and sender as the original, neither a
   * state event, the original not itself a replacement, and m.new_content in the replacement
   * (not checkable when encrypted).
   */
  private async replacements(viewer: Viewer, roomId: string, parents: StoredEvent[], chunk: ClientEvent[]): Promise<void> {
    const candidates = parents.filter((p) => relTypeOf(p) !== 'm.replace');
    const children = await this.visibleChildren(viewer, roomId, candidates, 'm.replace');
    const latest = new Map<string, StoredEvent>();
    for (const parent of candidates) {
      for (const edit of children.get(parent.eventId) ?? []) {
        const newContent = edit.json.content?.['m.new_content'];
        const hasNewContent = edit.type === 'm.room.encrypted' || (typeof newContent === 'object' && newContent !== null && !Array.isArray(newContent));
        if (edit.type !== parent.type || edit.sender !== parent.sender || edit.stateKey !== null || !hasNewContent) continue;
        const best = latest.get(parent.eventId);
        if (!best || edit.originServerTs > best.originServerTs || (edit.originServerTs === best.originServerTs && edit.eventId > best.eventId)) {
          latest.set(parent.eventId, edit);
        }
      }
    }
    if (latest.size === 0) return;
    const ids = [...latest.keys()];
    const formatted = await this.reads.toClientEvents(ids.map((id) => latest.get(id)!), viewer, true);
    const byParent = new Map(ids.map((id, i) => [id, formatted[i]!]));
    parents.forEach((parent, i) => {
      const edit = byParent.get(parent.eventId);
      if (edit) relationsOf(chunk[i]!)['m.replace'] = edit;
    });
  }

  /** m.reference: the ids of the events referencing each parent. */
  private async references(viewer: Viewer, roomId: string, parents: StoredEvent[], chunk: ClientEvent[]): Promise<void> {
    const children = await this.visibleChildren(viewer, roomId, parents, 'm.reference');
    parents.forEach((parent, i) => {
      const refs = children.get(parent.eventId);
      if (refs && refs.length > 0) relationsOf(chunk[i]!)['m.reference'] = { chunk: refs.map((e) => ({ event_id: e.eventId })) };
    });
  }
}
