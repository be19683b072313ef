import { Controller, Get, Inject, Query, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { clientPaths } from '../http/paths.js';
import { queryInteger } from '../validation.js';
import { NotificationsService } from './notifications.service.js';

/** GET /notifications: the events that notified the user (spec "Push notifications"). */
@Controller()
@UseGuards(AccessTokenGuard)
export class NotificationsController {
  constructor(@Inject(NotificationsService) private readonly notifications: NotificationsService) {}

  @Get(clientPaths('notifications'))
  list(@CurrentRequester() requester: Requester, @Query('from') from?: string, @Query('limit') limit?: string, @Query('only') only?: string) {
    return this.notifications.list(requester, {
      from: from === '' ? undefined : from,
      limit: limit === undefined || limit === '' ? undefined : queryInteger(limit, 'limit', 0),
      only,
    });
  }
}
