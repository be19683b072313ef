import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { badJson, missingParam } from '../errors.js';
import { v1Paths } from '../http/paths.js';
import { objectBody } from '../validation.js';
import { RegistrationTokensService } from './registration-tokens.service.js';

/** GET /v1/register/m.login.registration_token/validity: no access token, rate-limited (spec). */
@Controller()
@UseGuards(RateLimitGuard)
export class RegistrationTokenValidityController {
  constructor(@Inject(RegistrationTokensService) private readonly tokens: RegistrationTokensService) {}

  @Get(v1Paths('register/m.login.registration_token/validity'))
  @RateLimited('register')
  validity(@Query('token') token: unknown) {
    if (token === undefined || token === '') throw missingParam('missing query parameter "token"');
    if (typeof token !== 'string') throw badJson('"token" must be given once');
    return this.tokens.validity(token);
  }
}

const ADMIN = '/_synapse/admin/v1/registration_tokens';

/** Synapse's admin API for registration tokens: server admins only. */
@Controller()
@UseGuards(AccessTokenGuard)
export class RegistrationTokensAdminController {
  constructor(@Inject(RegistrationTokensService) private readonly tokens: RegistrationTokensService) {}

  @Get(ADMIN)
  async list(@CurrentRequester() requester: Requester, @Query('valid') valid: unknown) {
    await this.tokens.requireAdmin(requester.userId);
    return this.tokens.list(valid);
  }

  @Post(`${ADMIN}/new`)
  @HttpCode(200)
  async create(@CurrentRequester() requester: Requester, @Body() body: unknown) {
    await this.tokens.requireAdmin(requester.userId);
    return this.tokens.create(objectBody(body));
  }

  @Get(`${ADMIN}/:token`)
  async get(@CurrentRequester() requester: Requester, @Param('token') token: string) {
    await this.tokens.requireAdmin(requester.userId);
    return this.tokens.get(token);
  }

  @Put(`${ADMIN}/:token`)
  async update(@CurrentRequester() requester: Requester, @Param('token') token: string, @Body() body: unknown) {
    await this.tokens.requireAdmin(requester.userId);
    return this.tokens.update(token, objectBody(body));
  }

  @Delete(`${ADMIN}/:token`)
  async remove(@CurrentRequester() requester: Requester, @Param('token') token: string) {
    await this.tokens.requireAdmin(requester.userId);
    await this.tokens.delete(token);
    return {};
  }
}
