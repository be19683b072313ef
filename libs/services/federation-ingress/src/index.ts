// The public surface of @tessera/federation-ingress-service.
import type { ServiceDefinition } from '@tessera/http';
import { eventLogMigrations, federationMigrations } from '@tessera/storage';
import { FederationIngressModule } from './federation-ingress.module.js';

export { FederationIngressModule } from './federation-ingress.module.js';
export { FederationVersionController, SERVER_SOFTWARE } from './federation-version.controller.js';
export { ServerKeysController } from './server-keys.controller.js';
export { buildServerKeys, type ServerKeys } from './server-keys.js';
export { FederationContext } from './federation-context.js';
export { serverAllowedByAcl } from './room-access.js';
export { MAX_EDUS_PER_TXN, MAX_PDUS_PER_TXN } from './transactions.controller.js';

export const federationIngressService: ServiceDefinition = {
  name: 'federation-ingress',
  module: FederationIngressModule,
  listener: 'federation',
  defaultHealthPort: 8448,
  // It reads the event log and keeps remote keys and inbound transactions.
  migrations: [...eventLogMigrations, ...federationMigrations],
};
