import { Body, Controller, HttpCode, Inject, Post, UseGuards } from '@nestjs/common';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { RefreshTokensService } from '../auth/refresh-tokens.service.js';
import { clientPaths } from '../http/paths.js';
import { objectBody, requireString } from '../validation.js';

/** POST /refresh: no access token (the refresh token is the credential). */
@Controller()
@UseGuards(RateLimitGuard)
export class RefreshController {
  constructor(@Inject(RefreshTokensService) private readonly refreshTokens: RefreshTokensService) {}

  @Post(clientPaths('refresh'))
  @HttpCode(200)
  @RateLimited('refresh')
  refresh(@Body() body: unknown) {
    return this.refreshTokens.refresh(requireString(objectBody(body, false), 'refresh_token'));
  }
}
