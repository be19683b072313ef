// The public surface of @tessera/protocol. Each module adds its line here.
export * from './event-types.js';
export * from './room-versions.js';
export * from './canonical-json.js';
export * from './base64.js';
export * from './signing.js';
export * from './events.js';
export * from './identifiers.js';
export * from './auth/index.js';
export * from './state-res/index.js';
export * from './push/index.js';
export * from './spaces.js';
export * from './animated-image.js';
export * from './cross-signing.js';
