import { Controller, Get, Inject, Param, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { clientPaths } from '../http/paths.js';
import { requireUserIdParam } from '../validation.js';
import { WhoisService } from './whois.service.js';

@Controller()
@UseGuards(AccessTokenGuard)
export class WhoisController {
  constructor(@Inject(WhoisService) private readonly whois: WhoisService) {}

  @Get(clientPaths('admin/whois/:userId'))
  lookUp(@CurrentRequester() requester: Requester, @Param('userId') userId: string) {
    return this.whois.whois(requester.userId, requireUserIdParam(userId));
  }
}
