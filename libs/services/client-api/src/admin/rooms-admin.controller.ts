import { Body, Controller, Delete, Get, Inject, Param, Put, Query, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { objectBody } from '../validation.js';
import { ServerAdminGuard } from './admin.guard.js';
import { RoomsAdminService, type ListRoomsQuery } from './rooms-admin.service.js';

const V1 = '/_synapse/admin/v1/rooms';
const V2 = '/_synapse/admin/v2/rooms';

/** Synapse's room admin API: server admins only. */
@Controller()
@UseGuards(AccessTokenGuard, ServerAdminGuard)
export class RoomsAdminController {
  constructor(@Inject(RoomsAdminService) private readonly rooms: RoomsAdminService) {}

  @Get(V1)
  list(@Query() query: ListRoomsQuery) {
    return this.rooms.list(query);
  }

  @Get(`${V1}/:roomId`)
  details(@Param('roomId') roomId: string) {
    return this.rooms.details(roomId);
  }

  @Get(`${V1}/:roomId/members`)
  members(@Param('roomId') roomId: string) {
    return this.rooms.members(roomId);
  }

  @Get(`${V1}/:roomId/state`)
  state(@Param('roomId') roomId: string, @Query('type') type: unknown) {
    return this.rooms.state(roomId, type);
  }

  @Get(`${V1}/:roomId/block`)
  blockStatus(@Param('roomId') roomId: string) {
    return this.rooms.blockStatus(roomId);
  }

  @Put(`${V1}/:roomId/block`)
  setBlock(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() body: unknown) {
    return this.rooms.setBlock(requester.userId, roomId, objectBody(body, false));
  }

  /** Synchronous: answers the deletion's result once done. */
  @Delete(`${V1}/:roomId`)
  async deleteNow(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() body: unknown) {
    return this.rooms.deleteNow(roomId, await this.rooms.deleteParams(requester.userId, roomId, objectBody(body, false)));
  }

  /** In the background: answers a delete_id for delete_status. */
  @Delete(`${V2}/:roomId`)
  async startDelete(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() body: unknown) {
    return this.rooms.startDelete(roomId, await this.rooms.deleteParams(requester.userId, roomId, objectBody(body, false)));
  }

  @Get(`${V2}/delete_status/:deleteId`)
  deleteStatus(@Param('deleteId') deleteId: string) {
    return this.rooms.deleteStatus(deleteId);
  }

  @Get(`${V2}/:roomId/delete_status`)
  deleteStatusOfRoom(@Param('roomId') roomId: string) {
    return this.rooms.deleteStatusOfRoom(roomId);
  }
}
