// The public surface of @tessera/persistence-service.
import type { ServiceDefinition } from '@tessera/http';
import { eventLogMigrations } from '@tessera/storage';
import { PersistenceModule } from './persistence.module.js';

export { PersistenceModule } from './persistence.module.js';
export { EventWriter, PERSISTENCE_QUEUE } from './event-writer.js';

export const persistenceService: ServiceDefinition = {
  name: 'persistence',
  module: PersistenceModule,
  listener: 'none',
  defaultHealthPort: 8102,
  migrations: eventLogMigrations,
};
