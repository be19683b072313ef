export * from './migrations.js';
export * from './joined-servers.js';
export * from './destination-queues.js';
export * from './shard-leases.js';
export * from './pending-edus.js';
