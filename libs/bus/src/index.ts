export * from './transport.js';
export * from './errors.js';
export { createInProcessBus, type InProcessBusOptions } from './in-process.js';
export { createNatsBus, type NatsBusOptions } from './nats.js';
export * from './contracts/roomserver.js';
export * from './contracts/persistence.js';
export * from './contracts/stream.js';
export * from './subjects.js';
export * from './contracts/index.js';
