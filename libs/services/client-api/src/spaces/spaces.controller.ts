import { Controller, Get, Inject, Param, Query, Req, UseGuards } from '@nestjs/common';
import { isValidRoomAlias, isValidRoomId, roomVisibleTo } from '@tessera/protocol';
import { AccessTokensService, type Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, accessTokenOf, CurrentRequester, expiredTokenError } from '../auth/auth.guard.js';
import { DirectoryService } from '../directory/directory.service.js';
import { invalidParam, MatrixError, notFound } from '../errors.js';
import { v1Paths } from '../http/paths.js';
import { queryInteger, requireRoomIdParam } from '../validation.js';
import { HierarchyService } from './hierarchy.service.js';
import { SpaceRooms } from './space-rooms.js';

function queryBoolean(value: string | undefined, name: string): boolean {
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw invalidParam(`"${name}" must be true or false`);
}

@Controller()
export class HierarchyController {
  constructor(@Inject(HierarchyService) private readonly hierarchies: HierarchyService) {}

  @Get(v1Paths('rooms/:roomId/hierarchy'))
  @UseGuards(AccessTokenGuard)
  hierarchy(
    @CurrentRequester() r: Requester,
    @Param('roomId') roomId: string,
    @Query('suggested_only') suggestedOnly?: string,
    @Query('limit') limit?: string,
    @Query('max_depth') maxDepth?: string,
    @Query('from') from?: string,
  ) {
    return this.hierarchies.hierarchy(r.userId, requireRoomIdParam(roomId), {
      suggestedOnly: queryBoolean(suggestedOnly, 'suggested_only'),
      limit: limit === undefined ? undefined : queryInteger(limit, 'limit', 0),
      maxDepth: maxDepth === undefined ? undefined : queryInteger(maxDepth, 'max_depth', 0),
      from: from === undefined || from === '' ? undefined : from,
    });
  }
}

/**
 * GET /_matrix/client/v1/room_summary/{roomIdOrAlias} (spec v1.15+). Authentication is
 * optional, as the spec allows: without a token only rooms anyone may see (public, knockable,
 * world readable) are summarised; a token that is sent must be valid.
 */
@Controller()
export class RoomSummaryController {
  constructor(
    @Inject(SpaceRooms) private readonly rooms: SpaceRooms,
    @Inject(DirectoryService) private readonly directory: DirectoryService,
    @Inject(AccessTokensService) private readonly tokens: AccessTokensService,
  ) {}

  @Get(v1Paths('room_summary/:roomIdOrAlias'))
  async summary(@Req() request: { headers: Record<string, string | string[] | undefined>; query?: Record<string, unknown>; ip?: string }, @Param('roomIdOrAlias') target: string) {
    const token = accessTokenOf(request);
    let requester: Requester | undefined;
    if (token !== undefined) {
      const checked = await this.tokens.check(token, request.ip);
      if (checked === 'expired') throw expiredTokenError();
      requester = checked;
      if (!requester) throw new MatrixError(401, 'M_UNKNOWN_TOKEN', 'Unrecognised access token: log in again', { soft_logout: false });
    }
    const rawVia = request.query?.via;
    const via = (Array.isArray(rawVia) ? rawVia : rawVia === undefined ? [] : [rawVia]).filter((v): v is string => typeof v === 'string');
    let roomId: string;
    if (isValidRoomId(target)) roomId = target;
    else if (isValidRoomAlias(target)) {
      const resolved = await this.directory.resolve(target);
      roomId = resolved.room_id;
      via.push(...resolved.servers);
    } else throw invalidParam(`"${target}" is neither a room id nor a room alias`);

    const viewer = requester ? await this.rooms.viewerOf(requester.userId) : { memberships: new Map<string, string>(), joinedRooms: new Set<string>() };
    const room = await this.rooms.session(false)(roomId, via);
    const membership = viewer.memberships.get(roomId);
    if (!room || !roomVisibleTo(room.summary, { membership, joinedRooms: viewer.joinedRooms })) {
      throw notFound(`Room ${target} not found, or you may not see it`);
    }
    return requester ? { ...room.summary, membership: membership ?? 'leave' } : { ...room.summary };
  }
}
