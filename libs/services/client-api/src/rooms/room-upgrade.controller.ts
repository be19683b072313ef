import { Body, Controller, HttpCode, Inject, Param, Post, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { clientPaths } from '../http/paths.js';
import { objectBody, requireRoomIdParam } from '../validation.js';
import { RoomUpgradeService } from './room-upgrade.service.js';

/** POST /rooms/{roomId}/upgrade: replaces a room with a new one of another room version. */
@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class RoomUpgradeController {
  constructor(@Inject(RoomUpgradeService) private readonly upgrades: RoomUpgradeService) {}

  @Post(clientPaths('rooms/:roomId/upgrade'))
  @HttpCode(200)
  @RateLimited()
  upgrade(@CurrentRequester() r: Requester, @Param('roomId') roomId: string, @Body() body: unknown) {
    return this.upgrades.upgrade(r.userId, requireRoomIdParam(roomId), objectBody(body));
  }
}
