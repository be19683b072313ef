export { AuthError } from './auth-error.js';
export * from './auth-types.js';
export * from './auth-events.js';
export * from './event-format.js';
export { PowerContext, parsePowerLevels, parseLevel, roomCreators, type PowerLevels } from './power-levels.js';
export * from './rules.js';
export { thirdPartyInvitePublicKeys, signedMatchesAnyKey } from './third-party-invite.js';
export * from './restricted-join.js';
