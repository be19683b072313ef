/**
 * Auth rule "considering the event's auth_events": the events an event cites must be the ones
 * the auth events selection picks (no duplicates, no other types, none rejected, same room),
 * and from v1 to v11 must include the create event.
 */
import { stateKey, type RoomEvent } from '../event-types.js';
import type { RoomVersion } from '../room-versions.js';
import { AuthError, check } from './auth-error.js';
import { authTypesForEvent } from './auth-types.js';

export interface CheckAuthEventsOptions {
  /** Was this event rejected on receipt? Rejected events may not be cited. */
  isRejected?: (eventId: string) => boolean;
}

export function checkAuthEvents(
  event: RoomEvent,
  authEvents: RoomEvent[],
  roomVersion: RoomVersion,
  options: CheckAuthEventsOptions = {},
): void {
  const rule = 'auth events';
  const byId = new Map(authEvents.map((e) => [e.event_id, e]));
  for (const id of event.auth_events) check(byId.has(id), rule, `cited auth event ${id} was not provided`);
  check(new Set(event.auth_events).size === event.auth_events.length, rule, 'an auth event is cited twice');

  const allowed = new Set(authTypesForEvent(event, roomVersion).map(([t, k]) => stateKey(t, k)));
  const seen = new Set<string>();
  let hasCreate = false;
  for (const id of event.auth_events) {
    const authEvent = byId.get(id)!;
    check(typeof authEvent.state_key === 'string', rule, `${id} is not a state event`);
    const key = stateKey(authEvent.type, authEvent.state_key);
    check(!seen.has(key), rule, `duplicate entries for (${authEvent.type}, ${authEvent.state_key})`);
    seen.add(key);
    if (authEvent.type === 'm.room.create') {
      hasCreate = true;
      check(!roomVersion.roomIdIsCreateEventHash, rule, 'the create event may not be cited in this room version');
    }
    check(allowed.has(key), rule, `(${authEvent.type}, ${authEvent.state_key}) is not an auth event of this event`);
    check(!options.isRejected?.(id), rule, `${id} was rejected`);
    // The create event of v12 has no room_id; the room id is derived from it.
    if (authEvent.room_id !== undefined || !roomVersion.roomIdIsCreateEventHash) {
      check(authEvent.room_id === event.room_id, rule, `${id} belongs to another room`);
    }
  }
  if (event.type !== 'm.room.create' && !roomVersion.roomIdIsCreateEventHash && !hasCreate) {
    throw new AuthError(rule, 'no m.room.create event among the auth events');
  }
}
