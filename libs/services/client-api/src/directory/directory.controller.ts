import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { clientPaths } from '../http/paths.js';
import { objectBody, optionalBoolean, optionalInteger, optionalString, queryInteger, requireRoomIdParam } from '../validation.js';
import { DirectoryService, searchTermOf } from './directory.service.js';

/** Room aliases and directory visibility (need a token). */
@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class DirectoryController {
  constructor(@Inject(DirectoryService) private readonly directory: DirectoryService) {}

  @Put(clientPaths('directory/room/:roomAlias'))
  async putAlias(@CurrentRequester() requester: Requester, @Param('roomAlias') alias: string, @Body() body: unknown) {
    await this.directory.createAlias(requester.userId, alias, objectBody(body, false));
    return {};
  }

  @Delete(clientPaths('directory/room/:roomAlias'))
  async deleteAlias(@CurrentRequester() requester: Requester, @Param('roomAlias') alias: string) {
    await this.directory.deleteAlias(requester.userId, alias);
    return {};
  }

  @Get(clientPaths('rooms/:roomId/aliases'))
  @RateLimited()
  aliases(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string) {
    return this.directory.roomAliases(requester.userId, requireRoomIdParam(roomId));
  }

  @Put(clientPaths('directory/list/room/:roomId'))
  async setVisibility(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() body: unknown) {
    await this.directory.setVisibility(requester.userId, requireRoomIdParam(roomId), objectBody(body));
    return {};
  }

  @Post(clientPaths('publicRooms'))
  @HttpCode(200)
  searchPublicRooms(@Query('server') server: string | undefined, @Body() body: unknown) {
    const json = objectBody(body);
    // Not used (no third-party networks here), but checked: wrong types get M_BAD_JSON.
    optionalBoolean(json, 'include_all_networks');
    optionalString(json, 'third_party_instance_id');
    return this.directory.publicRooms({
      limit: optionalInteger(json, 'limit'),
      since: optionalString(json, 'since'),
      searchTerm: searchTermOf(json),
      server,
    });
  }
}

/** What the spec lets anyone read without a token. */
@Controller()
export class PublicDirectoryController {
  constructor(@Inject(DirectoryService) private readonly directory: DirectoryService) {}

  @Get(clientPaths('directory/room/:roomAlias'))
  resolveAlias(@Param('roomAlias') alias: string) {
    return this.directory.resolve(alias);
  }

  @Get(clientPaths('directory/list/room/:roomId'))
  visibility(@Param('roomId') roomId: string) {
    return this.directory.visibility(requireRoomIdParam(roomId));
  }

  @Get(clientPaths('publicRooms'))
  publicRooms(@Query('limit') limit: string | undefined, @Query('since') since: string | undefined, @Query('server') server: string | undefined) {
    return this.directory.publicRooms({ limit: limit === undefined ? undefined : queryInteger(limit, 'limit', 0), since, server });
  }
}
