export * from './db.js';
export * from './create-db.js';
export * from './migrate.js';
export { createPostgresDb, type PostgresDbOptions } from './postgres-db.js';
export { createPgliteDb, type PgliteDbOptions } from './pglite-db.js';
export { parseInt8 } from './int8.js';
export * from './event-log/index.js';
export * from './federation/index.js';
export * from './fanout/index.js';
