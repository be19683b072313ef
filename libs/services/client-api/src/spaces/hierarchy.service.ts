import { Inject, Injectable } from '@nestjs/common';
import { roomVisibleTo } from '@tessera/protocol';
import { forbidden, invalidParam } from '../errors.js';
import { SpaceRooms, type SpaceRoom } from './space-rooms.js';

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 100;
const DEFAULT_MAX_DEPTH = 10;
const MAX_DEPTH = 20;
/** Rooms looked at in one request at most, whatever the tree (resource bound the spec asks for). */
const MAX_ROOMS_VISITED = 2_000;

export interface HierarchyQuery {
  suggestedOnly: boolean;
  limit?: number;
  maxDepth?: number;
  from?: string;
}

/** What a pagination token holds: the walk is redone and the rooms already given skipped. */
interface Cursor {
  room: string;
  suggestedOnly: boolean;
  maxDepth: number;
  offset: number;
}

/**
 * GET /_matrix/client/v1/rooms/{roomId}/hierarchy (spec "Spaces"): the space tree depth first,
 * children in their m.space.child order, rooms the user may not see left out (and not walked
 * into), each room once. Tokens are stateless (any replica can continue a walk): they say how
 * many rooms were given, and the walk is redone from the root, as deterministic as the tree.
 */
@Injectable()
export class HierarchyService {
  constructor(@Inject(SpaceRooms) private readonly rooms: SpaceRooms) {}

  async hierarchy(userId: string, roomId: string, query: HierarchyQuery): Promise<Record<string, unknown>> {
    const limit = Math.min(query.limit ?? DEFAULT_LIMIT, MAX_LIMIT);
    if (limit < 1) throw invalidParam('"limit" must be greater than zero');
    if (query.maxDepth !== undefined && query.maxDepth < 0) throw invalidParam('"max_depth" must not be negative');
    const maxDepth = Math.min(query.maxDepth ?? DEFAULT_MAX_DEPTH, MAX_DEPTH);
    let offset = 0;
    if (query.from !== undefined) {
      const cursor = decodeCursor(query.from);
      if (!cursor || cursor.room !== roomId) throw invalidParam(`"from" ${JSON.stringify(query.from)} is not a hierarchy token of this room`);
      if (cursor.suggestedOnly !== query.suggestedOnly || cursor.maxDepth !== maxDepth) {
        throw invalidParam('"suggested_only" and "max_depth" cannot change while paginating');
      }
      offset = cursor.offset;
    }

    const viewer = await this.rooms.viewerOf(userId);
    const lookup = this.rooms.session(query.suggestedOnly);
    const visible = (room: SpaceRoom) => roomVisibleTo(room.summary, { membership: viewer.memberships.get(room.summary.room_id), joinedRooms: viewer.joinedRooms });

    const root = await lookup(roomId, []);
    if (!root || !visible(root)) throw forbidden(`You cannot see the room ${roomId}: join it, or ask to be invited`);

    // Depth first: a stack whose top is the next room in order (children pushed in reverse).
    const stack: Array<{ roomId: string; via: readonly string[]; depth: number }> = [{ roomId, via: [], depth: 0 }];
    const seen = new Set<string>();
    const shown: Record<string, unknown>[] = [];
    let skipped = 0;
    let more = false;
    while (stack.length > 0 && seen.size < MAX_ROOMS_VISITED) {
      const next = stack.pop()!;
      if (seen.has(next.roomId)) continue;
      seen.add(next.roomId);
      const room = next.roomId === roomId ? root : await lookup(next.roomId, next.via);
      if (!room || !visible(room)) continue;
      if (skipped < offset) skipped++;
      else if (shown.length < limit) shown.push({ ...room.summary, children_state: room.children });
      else {
        more = true;
        break;
      }
      if (next.depth < maxDepth) {
        for (const child of [...room.children].reverse()) {
          if (!seen.has(child.state_key)) stack.push({ roomId: child.state_key, via: child.content.via as string[], depth: next.depth + 1 });
        }
      }
    }
    const result: Record<string, unknown> = { rooms: shown };
    if (more) result.next_batch = encodeCursor({ room: roomId, suggestedOnly: query.suggestedOnly, maxDepth, offset: offset + shown.length });
    return result;
  }
}

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.room, c.suggestedOnly ? 1 : 0, c.maxDepth, c.offset])).toString('base64url');
}

function decodeCursor(token: string): Cursor | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (!Array.isArray(v) || v.length !== 4) return undefined;
    const [room, suggested, maxDepth, offset] = v as unknown[];
    if (typeof room !== 'string' || (suggested !== 0 && suggested !== 1) || !Number.isSafeInteger(maxDepth) || !Number.isSafeInteger(offset) || (offset as number) < 0) return undefined;
    return { room, suggestedOnly: suggested === 1, maxDepth: maxDepth as number, offset: offset as number };
  } catch {
    return undefined;
  }
}
