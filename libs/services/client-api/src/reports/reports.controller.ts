import { Body, Controller, HttpCode, Inject, Param, Post, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { invalidParam } from '../errors.js';
import { clientPaths } from '../http/paths.js';
import { objectBody, optionalInteger, optionalString, requireRoomIdParam, requireString, requireUserIdParam } from '../validation.js';
import { ReportsService } from './reports.service.js';

/** The spec's score scale: -100 (most offensive) to 0 (inoffensive). */
const MIN_SCORE = -100;
const MAX_SCORE = 0;

@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class ReportsController {
  constructor(@Inject(ReportsService) private readonly reports: ReportsService) {}

  /** POST /rooms/{roomId}/report/{eventId}: reason and score are both optional. */
  @Post(clientPaths('rooms/:roomId/report/:eventId'))
  @HttpCode(200)
  @RateLimited()
  async reportEvent(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Param('eventId') eventId: string, @Body() body: unknown) {
    const request = objectBody(body, false);
    const reason = optionalString(request, 'reason');
    const score = optionalInteger(request, 'score');
    if (score !== undefined && (score < MIN_SCORE || score > MAX_SCORE)) throw invalidParam(`"score" must be from ${MIN_SCORE} to ${MAX_SCORE}`);
    await this.reports.reportEvent(requester.userId, requireRoomIdParam(roomId), eventId, reason, score);
    return {};
  }

  /** POST /rooms/{roomId}/report: `reason` is required and may be blank. */
  @Post(clientPaths('rooms/:roomId/report'))
  @HttpCode(200)
  @RateLimited()
  async reportRoom(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() body: unknown) {
    const reason = requireString(objectBody(body, false), 'reason');
    await this.reports.reportRoom(requester.userId, requireRoomIdParam(roomId), reason);
    return {};
  }

  /** POST /users/{userId}/report: `reason` is required and may be blank. */
  @Post(clientPaths('users/:userId/report'))
  @HttpCode(200)
  @RateLimited()
  async reportUser(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Body() body: unknown) {
    const reason = requireString(objectBody(body, false), 'reason');
    await this.reports.reportUser(requester.userId, requireUserIdParam(userId), reason);
    return {};
  }
}
