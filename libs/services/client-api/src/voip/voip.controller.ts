import { Controller, Get, UseGuards } from '@nestjs/common';
import { AccessTokenGuard } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { clientPaths } from '../http/paths.js';

/**
 * GET /voip/turnServer. The configuration has no TURN server (no turn_uris /
 * turn_shared_secret), so the answer is Synapse's for that case: 200 with an empty object,
 * which clients (Element included) read as "no TURN server: use STUN or direct paths".
 */
@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class VoipController {
  @Get(clientPaths('voip/turnServer'))
  @RateLimited()
  turnServer(): Record<string, never> {
    return {};
  }
}
