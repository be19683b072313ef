// The public surface of @tessera/fanout-sender-service.
import type { ServiceDefinition } from '@tessera/http';
import { eventLogMigrations, fanoutSenderMigrations } from '@tessera/storage';
import { FanoutSenderModule } from './fanout-sender.module.js';

export { FanoutSenderModule } from './fanout-sender.module.js';
export { FanoutSenderService } from './fanout-sender.provider.js';
export { FanoutSender, type FanoutSenderOptions, type FanoutSenderLogger } from './fanout-sender.js';
export { DestinationQueue, type Edu } from './destination-queue.js';
export { FederationTransactionSender, type TransactionSender, type PduOutcome } from './transaction-sender.js';
export { backoffDelayMs, resolveSettings, settingsFromEnvironment, DEFAULT_SETTINGS, type FanoutSenderSettings } from './options.js';
export { shardOf, rendezvousOwner, shardsFor } from './shards.js';

export const fanoutSenderService: ServiceDefinition = {
  name: 'fanout-sender',
  module: FanoutSenderModule,
  listener: 'none',
  defaultHealthPort: 8103,
  // It reads the event log (and its event_destinations) persistence writes; either may start first.
  migrations: [...eventLogMigrations, ...fanoutSenderMigrations],
};
export { BatchedQueueStore, Coalescer, type QueueStore } from './batched-queue-store.js';
