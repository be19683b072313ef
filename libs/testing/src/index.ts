export * from './services.js';
export * from './openapi.js';
