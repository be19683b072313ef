/**
 * State resolution v2 (room versions 2-11) and v2.1 (room version 12, MSC4297), as the spec
 * describes them.
 */
import { stateKey, type StateMap } from '../event-types.js';
import type { RoomVersion } from '../room-versions.js';
import { authChain, authChainDifference, conflictedStateSubgraph } from './auth-chain.js';
import type { EventSource, ResolveOptions } from './event-source.js';
import { iterativeAuthChecks } from './iterative-auth-checks.js';
import { mainlineSort, reverseTopologicalPowerSort } from './sorting.js';
import { isPowerEvent, separate } from './conflicts.js';

const POWER_LEVELS = stateKey('m.room.power_levels', '');

export function resolveV2(roomVersion: RoomVersion, stateSets: StateMap[], events: EventSource, options: ResolveOptions = {}): StateMap {
  const { unconflicted, conflicted } = separate(stateSets, true);
  if (conflicted.size === 0) return unconflicted;

  const conflictedIds = new Set<string>();
  for (const ids of conflicted.values()) for (const id of ids) conflictedIds.add(id);

  const full = new Set(conflictedIds);
  for (const id of authChainDifference(stateSets, events, options.authChains)) full.add(id);
  if (roomVersion.stateResolution === 'v2.1') {
    for (const id of conflictedStateSubgraph(conflictedIds, events)) full.add(id);
  }
  // Events we cannot load cannot take part (as in Synapse and ruma).
  for (const id of full) if (!events.get(id)) full.delete(id);

  const powerEvents = [...full].filter((id) => isPowerEvent(events.get(id)!));
  const selected = new Set(powerEvents);
  for (const id of authChain(powerEvents, events, { provider: options.authChains })) if (full.has(id)) selected.add(id);
  const sortedPower = reverseTopologicalPowerSort(selected, events, roomVersion);

  const initial: StateMap = roomVersion.stateResolution === 'v2.1' ? new Map() : unconflicted;
  const partial = iterativeAuthChecks(roomVersion, sortedPower, initial, events, options);

  const remaining = [...full].filter((id) => !selected.has(id));
  const sortedRest = mainlineSort(remaining, partial.get(POWER_LEVELS), events);
  const resolved = iterativeAuthChecks(roomVersion, sortedRest, partial, events, options);

  for (const [key, id] of unconflicted) resolved.set(key, id);
  return resolved;
}
