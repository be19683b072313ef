import { Module } from '@nestjs/common';
import { ClientApiCoreModule } from '../../client-api-core.module.js';
import { UrlPreviewController, UrlPreviewEnabledGuard } from './url-preview.controller.js';
import { urlPreviewSettingsProvider } from './url-preview-settings.js';
import { UrlPreviewService } from './url-preview.service.js';

/** URL previews of the content repository (off unless url_preview_enabled). Its table is in clientApiMigrations. */
@Module({
  imports: [ClientApiCoreModule],
  controllers: [UrlPreviewController],
  providers: [urlPreviewSettingsProvider, UrlPreviewService, UrlPreviewEnabledGuard],
})
export class UrlPreviewModule {}
