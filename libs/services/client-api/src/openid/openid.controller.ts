import { Body, Controller, HttpCode, Inject, Param, Post, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { forbidden } from '../errors.js';
import { clientPaths } from '../http/paths.js';
import { objectBody, requireUserIdParam } from '../validation.js';
import { OpenIdTokensService } from './openid-tokens.service.js';

@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class OpenIdController {
  constructor(@Inject(OpenIdTokensService) private readonly tokens: OpenIdTokensService) {}

  /** POST /user/{userId}/openid/request_token: only for oneself (403 otherwise, as Synapse). */
  @Post(clientPaths('user/:userId/openid/request_token'))
  @HttpCode(200)
  @RateLimited()
  requestToken(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Body() body: unknown) {
    // The body is an empty object "reserved for future expansion": anything but an object is refused.
    objectBody(body);
    if (requireUserIdParam(userId) !== requester.userId) throw forbidden('You can only request OpenID tokens for yourself');
    return this.tokens.issue(requester.userId);
  }
}
