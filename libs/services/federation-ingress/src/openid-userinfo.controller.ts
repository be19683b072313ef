/**
 * GET /_matrix/federation/v1/openid/userinfo: exchanges an OpenID token that client-api issued
 * (POST /user/{userId}/openid/request_token) for the user id. The caller is any third party
 * (an integration manager, a widget host), not a homeserver, so the request is NOT signed
 * (spec: this endpoint has no X-Matrix authentication); the token is the credential.
 */
import { createHash } from 'node:crypto';
import { Controller, Get, Inject, Query } from '@nestjs/common';
import { DB, MatrixError } from '@tessera/http';
import type { Db } from '@tessera/storage';
import { getOpenIdTokenUser } from './client-data.reads.js';

@Controller('_matrix/federation/v1/openid')
export class OpenIdUserInfoController {
  constructor(@Inject(DB) private readonly db: Db) {}

  @Get('userinfo')
  async userInfo(@Query('access_token') token: unknown) {
    // As Synapse: a missing token is 401 M_MISSING_TOKEN, an unknown or expired one 401 M_UNKNOWN_TOKEN.
    if (typeof token !== 'string' || token === '') throw new MatrixError(401, 'M_MISSING_TOKEN', 'The access_token query parameter is required');
    const userId = await getOpenIdTokenUser(this.db, createHash('sha256').update(token).digest('hex'), Date.now());
    if (!userId) throw new MatrixError(401, 'M_UNKNOWN_TOKEN', 'The OpenID token is unknown or expired');
    return { sub: userId };
  }
}
