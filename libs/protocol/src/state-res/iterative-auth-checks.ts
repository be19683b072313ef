/**
 * Iterative auth checks (spec: state resolution v2): apply each event, in order, to the state
 * if the auth rules allow it against that state; a key the state lacks is read from the
 * event's own (not rejected) auth events.
 */
import { AuthError } from '../auth/auth-error.js';
import { authorize } from '../auth/rules.js';
import { stateKey, type RoomEvent, type StateMap } from '../event-types.js';
import type { RoomVersion } from '../room-versions.js';
import type { EventSource, ResolveOptions } from './event-source.js';

export function iterativeAuthChecks(
  roomVersion: RoomVersion,
  sortedEventIds: Iterable<string>,
  initialState: StateMap,
  events: EventSource,
  options: ResolveOptions = {},
): StateMap {
  const state: StateMap = new Map(initialState);
  for (const id of sortedEventIds) {
    const event = events.get(id);
    if (!event || typeof event.state_key !== 'string') continue;
    const own = new Map<string, RoomEvent>();
    for (const authId of event.auth_events) {
      if (options.isRejected?.(authId)) continue;
      const authEvent = events.get(authId);
      if (authEvent && typeof authEvent.state_key === 'string') own.set(stateKey(authEvent.type, authEvent.state_key), authEvent);
    }
    const lookup = (type: string, key: string): RoomEvent | undefined => {
      const k = stateKey(type, key);
      const inState = state.get(k);
      const fromState = inState !== undefined ? events.get(inState) : undefined;
      if (fromState) return fromState;
      const fromAuth = own.get(k);
      if (fromAuth) return fromAuth;
      // v12: the create event is never cited; the room id names it.
      if (type === 'm.room.create' && roomVersion.roomIdIsCreateEventHash && typeof event.room_id === 'string') {
        return events.get(`$${event.room_id.slice(1)}`);
      }
      return undefined;
    };
    try {
      authorize(event, lookup, roomVersion);
    } catch (e) {
      if (e instanceof AuthError) continue;
      throw e;
    }
    state.set(stateKey(event.type, event.state_key), id);
  }
  return state;
}
