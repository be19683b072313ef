import type { StateMap } from '../event-types.js';
import type { RoomVersion } from '../room-versions.js';
import type { EventSource, ResolveOptions } from './event-source.js';
import { resolveV1 } from './resolve-v1.js';
import { resolveV2 } from './resolve-v2.js';

/**
 * The state of a room where its histories meet: the resolution of the given state sets by the
 * room version's algorithm. Every event named by the state sets (and their auth chains) must
 * be loadable from `events`; those that are not are left out of the resolution.
 */
export function resolveState(roomVersion: RoomVersion, stateSets: StateMap[], events: EventSource, options: ResolveOptions = {}): StateMap {
  if (stateSets.length === 0) return new Map();
  if (stateSets.length === 1) return new Map(stateSets[0]);
  return roomVersion.stateResolution === 'v1' ? resolveV1(roomVersion, stateSets, events) : resolveV2(roomVersion, stateSets, events, options);
}
