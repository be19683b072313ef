// The public surface of @tessera/fanout-sender-service.
import type { ServiceDefinition } from '@tessera/http';
import { FanoutSenderModule } from './fanout-sender.module.js';

export { FanoutSenderModule } from './fanout-sender.module.js';

export const fanoutSenderService: ServiceDefinition = {
  name: 'fanout-sender',
  module: FanoutSenderModule,
  listener: 'none',
  defaultHealthPort: 8103,
};
