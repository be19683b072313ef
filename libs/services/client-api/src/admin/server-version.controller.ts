import { Controller, Get } from '@nestjs/common';

/** The version this server reports (as federation's /version does: package.json's version). */
const SERVER_VERSION = '0.1.0 (tessera)';

/** GET /_synapse/admin/v1/server_version: no access token needed, as Synapse (admin UIs ask it before logging in). */
@Controller()
export class ServerVersionController {
  @Get('/_synapse/admin/v1/server_version')
  version() {
    return { server_version: SERVER_VERSION };
  }
}
