import { Controller, Get, Param, Query, UseGuards } from '@nestjs/common';
import { AccessTokenGuard } from '../auth/auth.guard.js';
import { missingParam, notFound } from '../errors.js';
import { clientPaths } from '../http/paths.js';

/**
 * Third-party lookups (spec "Third-party Networks"). Protocols come from application services
 * (bridges), and this server has none, so it answers as Synapse does without any: no
 * protocols, 404 M_NOT_FOUND for a protocol's metadata, and empty lists for every lookup
 * (Synapse gathers lookups from the bridges that claim the protocol, and none do).
 */
@Controller()
@UseGuards(AccessTokenGuard)
export class ThirdPartyController {
  @Get(clientPaths('thirdparty/protocols'))
  protocols(): Record<string, never> {
    return {};
  }

  @Get(clientPaths('thirdparty/protocol/:protocol'))
  protocol(@Param('protocol') protocol: string): never {
    throw notFound(`Unknown third-party protocol ${JSON.stringify(protocol)}: no bridge provides it here`);
  }

  @Get(clientPaths('thirdparty/location/:protocol'))
  locationsByProtocol(): unknown[] {
    return [];
  }

  @Get(clientPaths('thirdparty/user/:protocol'))
  usersByProtocol(): unknown[] {
    return [];
  }

  /** The alias is required by the spec; the lookup itself finds nothing without bridges. */
  @Get(clientPaths('thirdparty/location'))
  locationsByAlias(@Query('alias') alias: unknown): unknown[] {
    if (typeof alias !== 'string' || alias === '') throw missingParam('query parameter "alias" is required');
    return [];
  }

  @Get(clientPaths('thirdparty/user'))
  usersByUserId(@Query('userid') userId: unknown): unknown[] {
    if (typeof userId !== 'string' || userId === '') throw missingParam('query parameter "userid" is required');
    return [];
  }
}
