/**
 * The little of user ID grammar the auth rules need: the server name of a sender, and
 * whether a string is a user ID at all (power level `users` keys, `additional_creators`).
 * Historical user IDs are accepted, as the spec asks of servers for existing rooms.
 */
export function userServerName(userId: string): string | undefined {
  if (typeof userId !== 'string' || !userId.startsWith('@')) return undefined;
  const colon = userId.indexOf(':');
  if (colon < 2 || colon === userId.length - 1) return undefined;
  return userId.slice(colon + 1);
}

export function isValidUserId(value: unknown): value is string {
  return (
    typeof value === 'string' &&
    Buffer.byteLength(value, 'utf8') <= 255 &&
    userServerName(value) !== undefined &&
    // Historical grammar: any printable character but ':' in the localpart.
    !/[\u0000-\u0020\u007f]/.test(value.slice(1, value.indexOf(':')))
  );
}

/** Server name of an event id of room versions 1-2 (`$local:server`), else undefined. */
export function eventIdServerName(eventId: string): string | undefined {
  const colon = eventId.indexOf(':');
  return colon < 0 ? undefined : eventId.slice(colon + 1);
}
