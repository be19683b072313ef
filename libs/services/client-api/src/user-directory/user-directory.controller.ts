import { Body, Controller, HttpCode, Inject, Post, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { invalidParam } from '../errors.js';
import { clientPaths } from '../http/paths.js';
import { objectBody, optionalInteger, requireString } from '../validation.js';
import { MAX_DIRECTORY_LIMIT, UserDirectoryService } from './user-directory.service.js';

@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class UserDirectoryController {
  constructor(@Inject(UserDirectoryService) private readonly directory: UserDirectoryService) {}

  /** POST /user_directory/search: limit defaults to 10 (spec) and is capped at 50 (as Synapse). */
  @Post(clientPaths('user_directory/search'))
  @HttpCode(200)
  @RateLimited()
  search(@CurrentRequester() requester: Requester, @Body() body: unknown) {
    const request = objectBody(body, false);
    const searchTerm = requireString(request, 'search_term');
    const limit = optionalInteger(request, 'limit') ?? 10;
    if (limit < 0) throw invalidParam('"limit" must not be negative');
    return this.directory.search(requester.userId, searchTerm, Math.min(limit, MAX_DIRECTORY_LIMIT));
  }
}
