import { Inject, Injectable } from '@nestjs/common';
import { DB } from '@tessera/http';
import { roomSummaryFromState, spaceChildren, type RoomSummaryChunk, type SpaceChildEvent, type SpaceStateEvent } from '@tessera/protocol';
import { getSpaceRoomState, getUserMemberships, type Db } from '@tessera/storage';
import { RemoteQueries } from '../federation/remote-queries.js';

/** A room as the spaces APIs show it: its summary and (for a space) its children. */
export interface SpaceRoom {
  summary: RoomSummaryChunk;
  children: SpaceChildEvent[];
  /** Learnt from another server (this server holds no state of the room). */
  remote: boolean;
}

/**
 * Reads rooms for the hierarchy and room summary APIs: from this server's current state when
 * it holds the room, else from the via servers' federation hierarchy API (answers kept for the
 * request: a remote space's answer also describes its children).
 */
@Injectable()
export class SpaceRooms {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(RemoteQueries) private readonly remote: RemoteQueries,
  ) {}

  /** The room held here, or undefined when this server has no state of it. */
  async local(roomId: string, suggestedOnly: boolean): Promise<SpaceRoom | undefined> {
    const held = await getSpaceRoomState(this.db, roomId);
    if (!held) return undefined;
    return { summary: roomSummaryFromState(roomId, held.roomVersion, held.state, held.joinedMembers), children: spaceChildren(held.state, suggestedOnly), remote: false };
  }

  /** A lookup for one request: local rooms first, then other servers, each room read once. */
  session(suggestedOnly: boolean): (roomId: string, via: readonly string[]) => Promise<SpaceRoom | undefined> {
    const learnt = new Map<string, SpaceRoom | undefined>();
    return async (roomId, via) => {
      const local = await this.local(roomId, suggestedOnly);
      if (local) return local;
      if (learnt.has(roomId)) return learnt.get(roomId);
      const answer = via.length > 0 ? await this.remote.hierarchy(roomId, via, suggestedOnly) : undefined;
      if (!answer) {
        learnt.set(roomId, undefined);
        return undefined;
      }
      const found = remoteRoom(answer.room, suggestedOnly);
      learnt.set(roomId, found);
      // The children it described are as good as asking for them (their own children included).
      for (const child of answer.children) {
        const id = child.room_id as string;
        if (!learnt.has(id)) learnt.set(id, remoteRoom(child, suggestedOnly));
      }
      for (const id of answer.inaccessibleChildren) if (!learnt.has(id)) learnt.set(id, undefined);
      return found;
    };
  }

  /** The requester's memberships: room -> membership, and the rooms they are joined to. */
  async viewerOf(userId: string): Promise<{ memberships: Map<string, string>; joinedRooms: Set<string> }> {
    const memberships = new Map((await getUserMemberships(this.db, userId)).map((m) => [m.roomId, m.membership]));
    const joinedRooms = new Set([...memberships].filter(([, m]) => m === 'join').map(([r]) => r));
    return { memberships, joinedRooms };
  }
}

/** A room chunk from another server's answer, reduced to the fields the spec defines. */
function remoteRoom(chunk: Record<string, unknown>, suggestedOnly: boolean): SpaceRoom {
  const str = (k: string) => (typeof chunk[k] === 'string' && chunk[k] !== '' ? (chunk[k] as string) : undefined);
  const summary: RoomSummaryChunk = {
    room_id: chunk.room_id as string,
    num_joined_members: Number.isSafeInteger(chunk.num_joined_members) ? (chunk.num_joined_members as number) : 0,
    world_readable: chunk.world_readable === true,
    guest_can_join: chunk.guest_can_join === true,
  };
  for (const k of ['name', 'topic', 'canonical_alias', 'avatar_url', 'join_rule', 'room_type', 'encryption', 'room_version'] as const) {
    const v = str(k);
    if (v !== undefined) summary[k] = v;
  }
  if (Array.isArray(chunk.allowed_room_ids)) summary.allowed_room_ids = chunk.allowed_room_ids.filter((r): r is string => typeof r === 'string');
  const state: SpaceStateEvent[] = (Array.isArray(chunk.children_state) ? chunk.children_state : [])
    .filter((e): e is Record<string, unknown> => !!e && typeof e === 'object' && !Array.isArray(e))
    .filter((e) => typeof e.state_key === 'string' && typeof e.sender === 'string' && !!e.content && typeof e.content === 'object')
    .map((e) => ({
      type: String(e.type),
      state_key: e.state_key as string,
      sender: e.sender as string,
      content: e.content as Record<string, unknown>,
      origin_server_ts: Number.isSafeInteger(e.origin_server_ts) ? (e.origin_server_ts as number) : 0,
    }));
  return { summary, children: spaceChildren(state, suggestedOnly), remote: true };
}
