// The public surface of @tessera/observability: Prometheus metrics, structured logs and the
// request id that ties a request's log lines together across the bus.
export * from './bus.js';
export * from './http.js';
export * from './logger.js';
export * from './metrics.js';
export * from './request-context.js';
