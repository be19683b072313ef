/**
 * GET /_matrix/federation/v1/hierarchy/{roomId} (spec "Spaces", Server-Server API): a space
 * held here and its children, for another server to build its users' hierarchy. Not paginated;
 * rooms the asking server could neither peek nor join are left out (the room itself: 404) or
 * listed as inaccessible_children; children not held here are left out (the asker tries their
 * other via servers).
 */
import { Controller, Get, Inject, Param, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { isValidRoomId, roomSummaryFromState, roomVisibleToServer, spaceChildren } from '@tessera/protocol';
import { DB, MatrixError } from '@tessera/http';
import { getJoinedServers, getSpaceRoomState, type Db } from '@tessera/storage';
import { FederationContext } from './federation-context.js';
import { checkServerAcl } from './room-access.js';

@Controller('_matrix/federation/v1')
export class HierarchyController {
  constructor(
    @Inject(FederationContext) private readonly ctx: FederationContext,
    @Inject(DB) private readonly db: Db,
  ) {}

  @Get('hierarchy/:roomId')
  async hierarchy(@Req() req: FastifyRequest, @Param('roomId') roomId: string, @Query('suggested_only') suggestedOnly: unknown) {
    const origin = await this.ctx.authenticate(req);
    if (!isValidRoomId(roomId)) throw new MatrixError(400, 'M_INVALID_PARAM', 'roomId must be a room id');
    if (suggestedOnly !== undefined && suggestedOnly !== 'true' && suggestedOnly !== 'false') throw new MatrixError(400, 'M_INVALID_PARAM', 'suggested_only must be true or false');
    const onlySuggested = suggestedOnly === 'true';
    const room = await this.visible(roomId, origin, onlySuggested);
    if (!room) throw new MatrixError(404, 'M_NOT_FOUND', `room ${roomId} is not known here, or ${origin} could neither peek nor join it`);
    await checkServerAcl(this.db, roomId, origin);
    const children: Record<string, unknown>[] = [];
    const inaccessible: string[] = [];
    for (const child of room.children_state) {
      const childRoom = await this.visible(child.state_key, origin, onlySuggested);
      if (childRoom) children.push(childRoom);
      else if (await getSpaceRoomState(this.db, child.state_key)) inaccessible.push(child.state_key);
    }
    return { room, children, inaccessible_children: inaccessible };
  }

  /** The room's chunk with its children_state when it is held here and the origin may see it. */
  private async visible(roomId: string, origin: string, suggestedOnly: boolean) {
    const held = await getSpaceRoomState(this.db, roomId);
    if (!held) return undefined;
    const summary = roomSummaryFromState(roomId, held.roomVersion, held.state, held.joinedMembers);
    const joined = await getJoinedServers(this.db, roomId);
    const originIn = new Set<string>();
    for (const allowed of summary.allowed_room_ids ?? []) {
      if ((await getJoinedServers(this.db, allowed)).includes(origin)) originIn.add(allowed);
    }
    if (!roomVisibleToServer(summary, joined.includes(origin), (r) => originIn.has(r))) return undefined;
    return { ...summary, children_state: spaceChildren(held.state, suggestedOnly) };
  }
}
