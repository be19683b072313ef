import { Controller, Get, Inject, Injectable, Query, Res, UseGuards, type CanActivate } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { LOGGER } from '@tessera/http';
import type { Logger } from 'pino';
import type { Requester } from '../../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../../auth/rate-limit.guard.js';
import { invalidParam, MatrixError, missingParam } from '../../errors.js';
import { mediaPaths, v1Paths } from '../../http/paths.js';
import { queryInteger } from '../../validation.js';
import { UrlPreviewService } from './url-preview.service.js';

/**
 * Disabled previews (the default) answer as Synapse, which then does not mount the endpoints:
 * 404 M_UNRECOGNIZED, before any authentication, as any unknown path.
 */
@Injectable()
export class UrlPreviewEnabledGuard implements CanActivate {
  constructor(@Inject(UrlPreviewService) private readonly previews: UrlPreviewService) {}

  canActivate(): boolean {
    if (!this.previews.enabled) throw new MatrixError(404, 'M_UNRECOGNIZED', 'Unrecognized request: URL previews are disabled on this server (url_preview_enabled)');
    return true;
  }
}

/**
 * GET /_matrix/client/v1/media/preview_url and the deprecated /_matrix/media/v3 (and r0) one:
 * both authenticated (the spec asks an access token of both) and rate-limited.
 */
@Controller()
@UseGuards(UrlPreviewEnabledGuard, AccessTokenGuard, RateLimitGuard)
export class UrlPreviewController {
  constructor(
    @Inject(UrlPreviewService) private readonly previews: UrlPreviewService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @Get([...v1Paths('media/preview_url'), ...mediaPaths('preview_url')])
  @RateLimited('url_preview')
  async preview(@CurrentRequester() requester: Requester, @Query() query: Record<string, unknown>, @Res() reply: FastifyReply): Promise<void> {
    const url = query.url;
    if (url === undefined || url === '') throw missingParam('query parameter "url" is required');
    if (typeof url !== 'string') throw invalidParam('query parameter "url" must be given once');
    const ts = query.ts === undefined || query.ts === '' ? undefined : queryInteger(query.ts, 'ts', 0);
    let status = 200;
    let body: unknown;
    try {
      body = await this.previews.preview(requester.userId, url, ts);
    } catch (err) {
      // The page's failure (unreachable, refused, too large), not ours: answered here, so the
      // exception filter does not log every bad link a user posts as a server error.
      if (!(err instanceof MatrixError) || err.status !== 502) throw err;
      this.logger.debug({ url, errcode: err.errcode, reason: err.message }, 'url preview failed');
      status = err.status;
      body = err.toJSON();
    }
    await reply.status(status).header('content-type', 'application/json').send(JSON.stringify(body));
  }
}
