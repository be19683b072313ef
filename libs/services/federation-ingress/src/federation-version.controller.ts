import { Controller, Get } from '@nestjs/common';

/** The implementation name and version reported to other servers. */
export const SERVER_SOFTWARE = { name: 'tessera', version: '0.1.0' } as const;

/** GET /_matrix/federation/v1/version: no authentication required (spec). */
@Controller('_matrix/federation/v1/version')
export class FederationVersionController {
  @Get()
  version() {
    return { server: { ...SERVER_SOFTWARE } };
  }
}
