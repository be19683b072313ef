// The public surface of @tessera/federation-client.
export * from './errors.js';
export * from './ip-ranges.js';
export * from './dns-resolver.js';
export * from './https-transport.js';
export * from './well-known.js';
export * from './server-name.js';
export * from './server-discovery.js';
export * from './x-matrix.js';
export * from './federation-client.js';
export * from './media-multipart.js';
export * from './server-keys.js';
export * from './key-ring.js';
export * from './pdu-verifier.js';
export * from './from-environment.js';
export * from './guarded-lookup.js';
export * from './guarded-request.js';
