// The public surface of @tessera/config.
export * from './config.js';
export * from './errors.js';
export * from './load.js';
export * from './duration.js';
export * from './signing-key.js';
