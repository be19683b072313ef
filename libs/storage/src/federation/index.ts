export * from './migrations.js';
export * from './server-keys.js';
export * from './inbound-txns.js';
