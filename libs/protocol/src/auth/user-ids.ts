/**
 * The little of identifier grammar the auth rules need, over the identifiers module: the server
 * name of a user id, whether a value is a user id (power levels `users` keys,
 * `additional_creators`), the server of a v1-v2 event id.
 */
import { isValidUserId as isUserIdString, parseUserId } from '../identifiers.js';

/** The server name of a user id, or undefined if it is not one. */
export function userServerName(userId: unknown): string | undefined {
  if (typeof userId !== 'string') return undefined;
  try {
    return parseUserId(userId).serverName;
  } catch {
    return undefined;
  }
}

/** A user id, historical localparts included (the spec asks that of servers for existing rooms). */
export function isValidUserId(value: unknown): value is string {
  return typeof value === 'string' && isUserIdString(value);
}

/** Server name of an event id of room versions 1-2 (`$opaque:server`), else undefined. */
export function eventIdServerName(eventId: string): string | undefined {
  const colon = eventId.indexOf(':');
  return colon < 0 ? undefined : eventId.slice(colon + 1);
}
