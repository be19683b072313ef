// The public surface of @tessera/client-api-service.
import type { ServiceDefinition } from '@tessera/http';
import { ClientApiModule } from './client-api.module.js';

export { ClientApiModule } from './client-api.module.js';
export { SUPPORTED_SPEC_VERSIONS, VersionsController } from './versions.controller.js';

export const clientApiService: ServiceDefinition = {
  name: 'client-api',
  module: ClientApiModule,
  listener: 'client',
  defaultHealthPort: 8008,
};
