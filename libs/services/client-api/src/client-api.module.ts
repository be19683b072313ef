import { Module } from '@nestjs/common';
import { WellKnownModule } from '@tessera/http';
import { AdminModule } from './admin/admin.module.js';
import { ClientApiCoreModule } from './client-api-core.module.js';
import { UrlPreviewModule } from './media/url-preview/url-preview.module.js';
import { RoomsModule } from './rooms/rooms.module.js';
import { VersionsController } from './versions.controller.js';

/**
 * The Client-Server API (/_matrix/client/...). Each capability adds its controller here and
 * keeps its logic in its own files.
 */
@Module({
  imports: [WellKnownModule, ClientApiCoreModule, RoomsModule, UrlPreviewModule, AdminModule],
  controllers: [VersionsController],
})
export class ClientApiModule {}
