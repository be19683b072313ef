// Contracts without a line of their own in ../index.ts (roomserver, persistence and stream have theirs).
export * from './edu.js';
export * from './health.js';
export * from './roomserver-federation.js';
export * from './client-changes.js';
export * from './backfill.js';
