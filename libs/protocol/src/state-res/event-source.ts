import type { RoomEvent } from '../event-types.js';

/** Where state resolution reads events. The caller loads every event it may need. */
export interface EventSource {
  get(eventId: string): RoomEvent | undefined;
}

/**
 * Precomputed auth chains (for instance from the database's auth chain index). Returns the
 * ids of every event reachable through auth_events from the event, not the event itself; or
 * undefined when unknown, and the chain is then walked through the EventSource.
 */
export type AuthChainProvider = (eventId: string) => Iterable<string> | undefined;

export interface ResolveOptions {
  authChains?: AuthChainProvider;
  /** Events rejected on receipt: iterative auth checks never use them as auth events. */
  isRejected?: (eventId: string) => boolean;
}

/** An EventSource over a map or a list of events. */
export function eventSourceOf(events: Iterable<RoomEvent> | ReadonlyMap<string, RoomEvent>): EventSource {
  const map = events instanceof Map ? (events as ReadonlyMap<string, RoomEvent>) : new Map([...(events as Iterable<RoomEvent>)].map((e) => [e.event_id, e]));
  return { get: (id) => map.get(id) };
}
