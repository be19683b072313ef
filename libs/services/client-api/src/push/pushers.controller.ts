import { Body, Controller, Get, HttpCode, Inject, Post, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { clientPaths } from '../http/paths.js';
import { objectBody } from '../validation.js';
import { PushersService } from './pushers.service.js';

/** GET /pushers and POST /pushers/set (spec "Push notifications"; set is rate-limited). */
@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class PushersController {
  constructor(@Inject(PushersService) private readonly pushers: PushersService) {}

  @Get(clientPaths('pushers'))
  list(@CurrentRequester() requester: Requester) {
    return this.pushers.list(requester.userId);
  }

  @Post(clientPaths('pushers/set'))
  @HttpCode(200)
  @RateLimited()
  async set(@CurrentRequester() requester: Requester, @Body() body: unknown) {
    await this.pushers.set(requester, objectBody(body, false));
    return {};
  }
}
