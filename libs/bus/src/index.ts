export * from './transport.js';
export * from './errors.js';
export { createInProcessBus, type InProcessBusOptions } from './in-process.js';
export { createNatsBus, type NatsBusOptions } from './nats.js';
