import { Module } from '@nestjs/common';
import { WellKnownModule } from '@tessera/http';
import { ClientApiCoreModule } from './client-api-core.module.js';
import { VersionsController } from './versions.controller.js';

/**
 * The Client-Server API (/_matrix/client/...). Each capability adds its controller here and
 * keeps its logic in its own files.
 */
@Module({
  imports: [WellKnownModule, ClientApiCoreModule],
  controllers: [VersionsController],
})
export class ClientApiModule {}
