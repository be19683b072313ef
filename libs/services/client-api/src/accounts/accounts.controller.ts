import { Body, Controller, Get, HttpCode, Inject, Post, Query, Req, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { missingParam, badJson } from '../errors.js';
import { clientPaths, v1Paths } from '../http/paths.js';
import type { ClientRequest } from '../http/request.js';
import { objectBody } from '../validation.js';
import { AccountsService } from './accounts.service.js';

/** Registration and login: no access token needed. */
@Controller()
@UseGuards(RateLimitGuard)
export class RegistrationController {
  constructor(@Inject(AccountsService) private readonly accounts: AccountsService) {}

  @Post(clientPaths('register'))
  @HttpCode(200)
  @RateLimited('register')
  register(@Body() body: unknown, @Query('kind') kind: string | undefined, @Req() request: ClientRequest) {
    return this.accounts.register(objectBody(body), kind ?? 'user', request.ip);
  }

  @Get(clientPaths('register/available'))
  @RateLimited('register')
  async available(@Query('username') username: unknown) {
    if (username === undefined || username === '') throw missingParam('missing query parameter "username"');
    if (typeof username !== 'string') throw badJson('"username" must be given once');
    await this.accounts.checkUsernameAvailable(username);
    return { available: true };
  }

  @Get(clientPaths('login'))
  @RateLimited('login')
  loginFlows() {
    return this.accounts.loginFlows();
  }

  @Post(clientPaths('login'))
  @HttpCode(200)
  @RateLimited('login')
  login(@Body() body: unknown, @Req() request: ClientRequest) {
    return this.accounts.login(objectBody(body, false), request.ip);
  }

  /** Synapse's shared-secret registration, as register_new_matrix_user uses it. */
  @Get('/_synapse/admin/v1/register')
  nonce() {
    return this.accounts.sharedSecretNonce();
  }

  @Post('/_synapse/admin/v1/register')
  @HttpCode(200)
  sharedSecretRegister(@Body() body: unknown, @Req() request: ClientRequest) {
    return this.accounts.sharedSecretRegister(objectBody(body, false), request.ip);
  }
}

/** Session endpoints of a logged-in user. */
@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class SessionController {
  constructor(@Inject(AccountsService) private readonly accounts: AccountsService) {}

  @Get(clientPaths('account/whoami'))
  @RateLimited()
  whoami(@CurrentRequester() requester: Requester) {
    return { user_id: requester.userId, device_id: requester.deviceId, is_guest: false };
  }

  @Post(clientPaths('logout'))
  @HttpCode(200)
  async logout(@CurrentRequester() requester: Requester) {
    await this.accounts.logout(requester);
    return {};
  }

  @Post(clientPaths('logout/all'))
  @HttpCode(200)
  async logoutAll(@CurrentRequester() requester: Requester) {
    await this.accounts.logoutAll(requester);
    return {};
  }

  @Post(clientPaths('account/password'))
  @HttpCode(200)
  @RateLimited('login')
  async changePassword(@CurrentRequester() requester: Requester, @Body() body: unknown) {
    await this.accounts.changePassword(requester, objectBody(body, false));
    return {};
  }

  @Post(clientPaths('account/deactivate'))
  @HttpCode(200)
  @RateLimited('login')
  deactivate(@CurrentRequester() requester: Requester, @Body() body: unknown) {
    return this.accounts.deactivate(requester, objectBody(body));
  }

  /** No third-party identifiers are bound on this server (m.3pid_changes is off). */
  @Get(clientPaths('account/3pid'))
  threepids() {
    return { threepids: [] };
  }

  @Post(v1Paths('login/get_token'))
  @HttpCode(200)
  @RateLimited('login')
  getLoginToken(@CurrentRequester() requester: Requester, @Body() body: unknown) {
    return this.accounts.createLoginToken(requester, objectBody(body));
  }
}
