// The public surface of @tessera/http: the Nest + Fastify setup and process runtime shared by every service.
export * from './cors.js';
export * from './exception-filter.js';
export * from './health.controller.js';
export * from './http-app.js';
export * from './json-body.js';
export * from './logger.js';
export * from './matrix-error.js';
export * from './route-table.js';
export * from './run-services.js';
export * from './runtime.js';
export * from './tokens.js';
export * from './well-known.controller.js';
export * from './idle-memory-trim.js';
