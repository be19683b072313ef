import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import {
  getCurrentStateEvents, getEvent, getEvents, getRoom, getThreadRoots, getUserMembershipInRoom, type Db, type StoredEvent,
} from '@tessera/storage';
import { forbidden, invalidParam, notFound } from '../errors.js';
import type { ClientEvent } from '../rooms/client-event.js';
import { decodePaginationToken, encodePaginationToken } from '../rooms/pagination-token.js';
import { RoomReads } from '../rooms/room-reads.js';
import { BundledAggregations } from './bundled-aggregations.js';
import { RelationPages } from './relation-pages.js';

export interface Viewer {
  userId: string;
  deviceId: string;
}

/** Synapse's defaults: 5 children or threads a page unless the client asks. */
const DEFAULT_LIMIT = 5;
const MAX_RELATIONS_LIMIT = 1000;
const MAX_THREADS_LIMIT = 100;
/** How far `recurse` follows relations of relations: the spec asks at least 3, Synapse does 3. */
const RECURSION_DEPTH = 3;
/** Rounds of fetching when history visibility drops roots, before answering with fewer. */
const MAX_FETCH_ROUNDS = 10;

export interface RelationsRequest {
  relType?: string;
  eventType?: string;
  from?: string;
  to?: string;
  dir?: string;
  limit?: number;
  /** As given in the query string ('true' or 'false'), undefined when absent. */
  recurse?: string;
}

/**
 * GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]] and /rooms/{roomId}/threads
 * (spec "Relationships"), with history visibility applied to every event returned. Pagination
 * tokens are the stream points of /messages (`t<position>`), so a /messages `start` or a /sync
 * `next_batch` is a valid `from` as the spec allows.
 */
@Injectable()
export class RelationsService {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(RoomReads) private readonly reads: RoomReads,
    @Inject(RelationPages) private readonly pages: RelationPages,
    @Inject(BundledAggregations) private readonly aggregations: BundledAggregations,
  ) {}

  /**
   * As Synapse (check_user_in_room_or_world_readable, departed users allowed): 403 unless the
   * user has a membership in the room or the room is world_readable. An unknown room is 403 too,
   * so that it cannot be told apart from a room the user may not see.
   */
  private async requireRoomAccess(userId: string, roomId: string): Promise<void> {
    if (!(await getRoom(this.db, roomId))) throw forbidden(`You are not a member of ${roomId}`);
    if (await getUserMembershipInRoom(this.db, roomId, userId)) return;
    const [hv] = await getCurrentStateEvents(this.db, roomId, ['m.room.history_visibility']);
    if (hv?.json.content?.history_visibility === 'world_readable') return;
    throw forbidden(`You are not a member of ${roomId}`);
  }

  async relations(viewer: Viewer, roomId: string, parentId: string, q: RelationsRequest): Promise<Record<string, unknown>> {
    const dir = q.dir ?? 'b';
    if (dir !== 'b' && dir !== 'f') throw invalidParam('"dir" must be "b" or "f"');
    if (q.recurse !== undefined && q.recurse !== 'true' && q.recurse !== 'false') throw invalidParam('"recurse" must be true or false');
    const limit = Math.min(q.limit ?? DEFAULT_LIMIT, MAX_RELATIONS_LIMIT);
    if (!Number.isInteger(limit) || limit < 0) throw invalidParam('"limit" must be a non-negative integer');
    const from = q.from === undefined ? undefined : decodePaginationToken(q.from, 'from');
    const to = q.to === undefined ? undefined : decodePaginationToken(q.to, 'to');
    await this.requireRoomAccess(viewer.userId, roomId);

    const parent = await getEvent(this.db, parentId);
    const notVisible = () => notFound(`Event ${parentId} not found in ${roomId}`);
    if (!parent || parent.roomId !== roomId || parent.outlier || parent.rejectedReason !== null || parent.streamPos === null) throw notVisible();
    if ((await this.reads.visibleEvents(viewer.userId, roomId, [parent])).length === 0) throw notVisible();

    const maxDepth = q.recurse === 'true' ? RECURSION_DEPTH : 1;
    const { events, next } = await this.pages.visibleChildren(viewer.userId, roomId, parentId, {
      relType: q.relType, eventType: q.eventType, maxDepth, dir, from, to, limit,
    });
    const chunk = await this.reads.toClientEvents(events, viewer, true);
    await this.aggregations.bundle(viewer, roomId, events, chunk);
    const result: Record<string, unknown> = { chunk };
    if (next !== null) result.next_batch = encodePaginationToken(next);
    // As Synapse: the token this page started from leads back (absent on the first page).
    if (q.from !== undefined) result.prev_batch = q.from;
    if (q.recurse !== undefined) result.recursion_depth = maxDepth;
    return result;
  }

  /** GET /rooms/{roomId}/threads: roots by latest reply, each with its m.thread aggregation. */
  async threadRoots(viewer: Viewer, roomId: string, q: { include?: string; from?: string; limit?: number }): Promise<Record<string, unknown>> {
    const include = q.include ?? 'all';
    if (include !== 'all' && include !== 'participated') throw invalidParam('"include" must be "all" or "participated"');
    if (q.limit !== undefined && (!Number.isInteger(q.limit) || q.limit < 1)) throw invalidParam('"limit" must be an integer greater than zero');
    const limit = Math.min(q.limit ?? DEFAULT_LIMIT, MAX_THREADS_LIMIT);
    let atOrBefore = q.from === undefined ? undefined : decodePaginationToken(q.from, 'from');
    await this.requireRoomAccess(viewer.userId, roomId);

    const roots: StoredEvent[] = [];
    let more = false;
    for (let round = 0; round < MAX_FETCH_ROUNDS && roots.length < limit; round++) {
      const want = limit - roots.length;
      const refs = await getThreadRoots(this.db, roomId, { atOrBefore, participant: include === 'participated' ? viewer.userId : undefined, limit: want + 1 });
      const page = refs.slice(0, want);
      more = refs.length > want;
      if (page.length === 0) break;
      const found = await getEvents(this.db, page.map((r) => r.rootId));
      const stored = page.map((r) => found.get(r.rootId)).filter((e): e is StoredEvent => !!e);
      roots.push(...(await this.reads.visibleEvents(viewer.userId, roomId, stored)));
      atOrBefore = page[page.length - 1]!.latestPos - 1;
      if (!more) break;
    }
    const chunk: ClientEvent[] = await this.reads.toClientEvents(roots, viewer, true);
    await this.aggregations.bundle(viewer, roomId, roots, chunk);
    const result: Record<string, unknown> = { chunk };
    if (more && atOrBefore !== undefined) result.next_batch = encodePaginationToken(atOrBefore);
    return result;
  }
}
