/**
 * State resolution v1 (room version 1). The spec describes it in prose; this follows the
 * reading every implementation shares (Synapse's original): resolve power levels first, then
 * join rules, then memberships, each by replaying the candidates from the lowest depth and
 * keeping the last one that passes auth; other keys take the highest-depth candidate that
 * passes auth. Ties in depth break on the SHA-1 of the event id.
 */
import { createHash } from 'node:crypto';
import { AuthError } from '../auth/auth-error.js';
import { authTypesForEvent } from '../auth/auth-types.js';
import { authorize } from '../auth/rules.js';
import { splitStateKey, stateKey, type RoomEvent, type StateKey, type StateMap } from '../event-types.js';
import type { RoomVersion } from '../room-versions.js';
import { separate } from './conflicts.js';
import type { EventSource } from './event-source.js';

function passes(event: RoomEvent, auth: Map<StateKey, RoomEvent>, roomVersion: RoomVersion): boolean {
  try {
    authorize(event, (type, key) => auth.get(stateKey(type, key)), roomVersion);
    return true;
  } catch (e) {
    if (e instanceof AuthError) return false;
    throw e;
  }
}

/** Highest depth first; equal depths by SHA-1 of the event id. */
function ordered(events: RoomEvent[]): RoomEvent[] {
  const sha1 = (id: string) => createHash('sha1').update(id).digest('hex');
  return events
    .map((e) => ({ e, depth: typeof e.depth === 'number' ? e.depth : 0, hash: sha1(e.event_id) }))
    .sort((a, b) => b.depth - a.depth || (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0))
    .map((x) => x.e);
}

function resolveAuthEvents(candidates: RoomEvent[], authEvents: Map<StateKey, RoomEvent>, roomVersion: RoomVersion): RoomEvent {
  const replay = ordered(candidates).reverse();
  const auth = new Map<StateKey, RoomEvent>();
  for (const e of candidates) {
    for (const [t, k] of authTypesForEvent(e, roomVersion)) {
      const found = authEvents.get(stateKey(t, k));
      if (found) auth.set(stateKey(t, k), found);
    }
  }
  let previous = replay[0];
  for (const event of replay.slice(1)) {
    auth.set(stateKey(previous.type, previous.state_key!), previous);
    if (!passes(event, auth, roomVersion)) return previous;
    previous = event;
  }
  return previous;
}

function resolveNormalEvents(candidates: RoomEvent[], authEvents: Map<StateKey, RoomEvent>, roomVersion: RoomVersion): RoomEvent {
  const sorted = ordered(candidates);
  for (const event of sorted) if (passes(event, authEvents, roomVersion)) return event;
  // None passes: keep the one of least depth.
  return sorted[sorted.length - 1];
}

export function resolveV1(roomVersion: RoomVersion, stateSets: StateMap[], events: EventSource): StateMap {
  const { unconflicted, conflicted } = separate(stateSets, false);
  const candidates = new Map<StateKey, RoomEvent[]>();
  for (const [key, ids] of conflicted) {
    const loaded = [...ids].map((id) => events.get(id)).filter((e): e is RoomEvent => e !== undefined);
    if (loaded.length > 0) candidates.set(key, loaded);
  }
  // Auth events for the conflicted events, taken from the unconflicted state.
  const authEvents = new Map<StateKey, RoomEvent>();
  for (const list of candidates.values()) {
    for (const event of list) {
      for (const [t, k] of authTypesForEvent(event, roomVersion)) {
        const id = unconflicted.get(stateKey(t, k));
        const found = id !== undefined ? events.get(id) : undefined;
        if (found) authEvents.set(stateKey(t, k), found);
      }
    }
  }
  const resolved = new Map<StateKey, RoomEvent>();
  const phase = (pick: (key: StateKey) => boolean, how: typeof resolveAuthEvents) => {
    for (const [key, list] of candidates) {
      if (resolved.has(key) || !pick(key)) continue;
      resolved.set(key, list.length === 1 ? list[0] : how(list, authEvents, roomVersion));
    }
    for (const [key, event] of resolved) authEvents.set(key, event);
  };
  const typeOf = (key: StateKey) => splitStateKey(key)[0];
  phase((key) => key === stateKey('m.room.power_levels', ''), resolveAuthEvents);
  phase((key) => typeOf(key) === 'm.room.join_rules', resolveAuthEvents);
  phase((key) => typeOf(key) === 'm.room.member', resolveAuthEvents);
  phase(() => true, resolveNormalEvents);

  const state: StateMap = new Map(unconflicted);
  for (const [key, event] of resolved) state.set(key, event.event_id);
  return state;
}
