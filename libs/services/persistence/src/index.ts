// The public surface of @tessera/persistence-service.
import type { ServiceDefinition } from '@tessera/http';
import { PersistenceModule } from './persistence.module.js';

export { PersistenceModule } from './persistence.module.js';

export const persistenceService: ServiceDefinition = {
  name: 'persistence',
  module: PersistenceModule,
  listener: 'none',
  defaultHealthPort: 8102,
};
