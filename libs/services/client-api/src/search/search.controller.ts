import { Body, Controller, HttpCode, Inject, Post, Query, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { invalidParam } from '../errors.js';
import { clientPaths } from '../http/paths.js';
import { SearchService } from './search.service.js';

/** POST /search (spec "Server Side Search"). */
@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class SearchController {
  constructor(@Inject(SearchService) private readonly searches: SearchService) {}

  @Post(clientPaths('search'))
  @RateLimited('search')
  @HttpCode(200)
  search(@CurrentRequester() r: Requester, @Body() body: unknown, @Query('next_batch') nextBatch?: unknown) {
    if (nextBatch !== undefined && typeof nextBatch !== 'string') throw invalidParam('"next_batch" must be given once');
    return this.searches.search(r, body, nextBatch);
  }
}
