import { Body, Controller, Get, HttpCode, Inject, Param, Post, Put, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { clientPaths } from '../http/paths.js';
import { ReceiptsService } from '../user-data/receipts.service.js';
import { objectBody, requireRoomIdParam, requireUserIdParam } from '../validation.js';
import { PresenceService } from './presence.service.js';
import { TypingService } from './typing.service.js';

@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class EphemeralController {
  constructor(
    @Inject(PresenceService) private readonly presence: PresenceService,
    @Inject(TypingService) private readonly typing: TypingService,
    @Inject(ReceiptsService) private readonly receipts: ReceiptsService,
  ) {}

  @Get(clientPaths('presence/:userId/status'))
  getPresence(@Param('userId') userId: string) {
    return this.presence.getStatus(requireUserIdParam(userId));
  }

  @Put(clientPaths('presence/:userId/status'))
  @RateLimited()
  async setPresence(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Body() body: unknown) {
    await this.presence.setStatus(requester.userId, requireUserIdParam(userId), objectBody(body, false));
    return {};
  }

  @Put(clientPaths('rooms/:roomId/typing/:userId'))
  @RateLimited()
  async setTyping(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Param('userId') userId: string, @Body() body: unknown) {
    await this.typing.setTyping(requester.userId, requireRoomIdParam(roomId), requireUserIdParam(userId), objectBody(body, false));
    return {};
  }

  @Post(clientPaths('rooms/:roomId/receipt/:receiptType/:eventId'))
  @HttpCode(200)
  @RateLimited()
  async receipt(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Param('receiptType') receiptType: string, @Param('eventId') eventId: string, @Body() body: unknown) {
    await this.receipts.postReceipt(requester.userId, requireRoomIdParam(roomId), receiptType, eventId, objectBody(body));
    return {};
  }

  @Post(clientPaths('rooms/:roomId/read_markers'))
  @HttpCode(200)
  @RateLimited()
  async readMarkers(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() body: unknown) {
    await this.receipts.postReadMarkers(requester.userId, requireRoomIdParam(roomId), objectBody(body, false));
    return {};
  }
}
