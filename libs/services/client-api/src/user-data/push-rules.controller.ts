import { Body, Controller, Delete, Get, Inject, Param, Put, Query, UseGuards } from '@nestjs/common';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccessTokenGuard, CurrentRequester } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { MatrixError } from '../errors.js';
import { clientPaths } from '../http/paths.js';
import { objectBody } from '../validation.js';
import { PushRulesService } from './push-rules.service.js';

/** Push rules; `global` is the only scope (spec), so it is part of the paths. */
@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class PushRulesController {
  constructor(@Inject(PushRulesService) private readonly rules: PushRulesService) {}

  @Get(clientPaths('pushrules'))
  async all(@CurrentRequester() requester: Requester) {
    return { global: await this.rules.ruleset(requester.userId) };
  }

  @Get(clientPaths('pushrules/global'))
  global(@CurrentRequester() requester: Requester) {
    return this.rules.ruleset(requester.userId);
  }

  /**
   * The spec's paths end in a slash (/pushrules/ and /pushrules/global/) and Nest strips a
   * trailing slash from route paths: a wildcard catches them. Static and parameter routes win
   * over a wildcard in Fastify's router, so only otherwise unmatched paths arrive here.
   */
  @Get(clientPaths('pushrules/*'))
  async withSlash(@CurrentRequester() requester: Requester, @Param('*') rest: string) {
    if (rest === '') return this.all(requester);
    if (rest === 'global/') return this.global(requester);
    throw new MatrixError(404, 'M_UNRECOGNIZED', 'Unrecognized request');
  }

  @Get(clientPaths('pushrules/global/:kind/:ruleId'))
  get(@CurrentRequester() requester: Requester, @Param('kind') kind: string, @Param('ruleId') ruleId: string) {
    return this.rules.getRule(requester.userId, kind, ruleId);
  }

  @Put(clientPaths('pushrules/global/:kind/:ruleId'))
  @RateLimited()
  async put(
    @CurrentRequester() requester: Requester,
    @Param('kind') kind: string,
    @Param('ruleId') ruleId: string,
    @Query('before') before: string | undefined,
    @Query('after') after: string | undefined,
    @Body() body: unknown,
  ) {
    await this.rules.putRule(requester.userId, kind, ruleId, objectBody(body, false), before || undefined, after || undefined);
    return {};
  }

  @Delete(clientPaths('pushrules/global/:kind/:ruleId'))
  async delete(@CurrentRequester() requester: Requester, @Param('kind') kind: string, @Param('ruleId') ruleId: string) {
    await this.rules.deleteRule(requester.userId, kind, ruleId);
    return {};
  }

  @Get(clientPaths('pushrules/global/:kind/:ruleId/enabled'))
  async getEnabled(@CurrentRequester() requester: Requester, @Param('kind') kind: string, @Param('ruleId') ruleId: string) {
    return { enabled: (await this.rules.getRule(requester.userId, kind, ruleId)).enabled };
  }

  @Put(clientPaths('pushrules/global/:kind/:ruleId/enabled'))
  async setEnabled(@CurrentRequester() requester: Requester, @Param('kind') kind: string, @Param('ruleId') ruleId: string, @Body() body: unknown) {
    await this.rules.setEnabled(requester.userId, kind, ruleId, objectBody(body, false));
    return {};
  }

  @Get(clientPaths('pushrules/global/:kind/:ruleId/actions'))
  async getActions(@CurrentRequester() requester: Requester, @Param('kind') kind: string, @Param('ruleId') ruleId: string) {
    return { actions: (await this.rules.getRule(requester.userId, kind, ruleId)).actions };
  }

  @Put(clientPaths('pushrules/global/:kind/:ruleId/actions'))
  async setActions(@CurrentRequester() requester: Requester, @Param('kind') kind: string, @Param('ruleId') ruleId: string, @Body() body: unknown) {
    await this.rules.setActions(requester.userId, kind, ruleId, objectBody(body, false));
    return {};
  }
}
