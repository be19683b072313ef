// The public surface of @tessera/federation-ingress-service.
import type { ServiceDefinition } from '@tessera/http';
import { FederationIngressModule } from './federation-ingress.module.js';

export { FederationIngressModule } from './federation-ingress.module.js';
export { FederationVersionController, SERVER_SOFTWARE } from './federation-version.controller.js';
export { ServerKeysController } from './server-keys.controller.js';
export { buildServerKeys, type ServerKeys } from './server-keys.js';

export const federationIngressService: ServiceDefinition = {
  name: 'federation-ingress',
  module: FederationIngressModule,
  listener: 'federation',
  defaultHealthPort: 8448,
};
