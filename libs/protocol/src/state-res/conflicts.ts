import type { RoomEvent, StateKey, StateMap } from '../event-types.js';

/**
 * Splits state sets into the unconflicted state map and the conflicted keys with their values.
 * v2: a key is unconflicted only if every set has it with the same value. v1 (Synapse's
 * reading of the v1 algorithm): a key is unconflicted if the sets that have it agree.
 */
export function separate(
  stateSets: StateMap[],
  absentIsConflict: boolean,
): { unconflicted: StateMap; conflicted: Map<StateKey, Set<string>> } {
  const unconflicted: StateMap = new Map();
  const conflicted = new Map<StateKey, Set<string>>();
  if (stateSets.length === 0) return { unconflicted, conflicted };
  const keys = new Set<StateKey>();
  for (const set of stateSets) for (const key of set.keys()) keys.add(key);
  for (const key of keys) {
    const values = new Set<string>();
    let missing = false;
    for (const set of stateSets) {
      const id = set.get(key);
      if (id === undefined) missing = true;
      else values.add(id);
    }
    if (values.size === 1 && !(missing && absentIsConflict)) unconflicted.set(key, [...values][0]);
    else conflicted.set(key, values);
  }
  return { unconflicted, conflicted };
}

/**
 * Power events: power levels, join rules, and memberships that remove someone else (leave or
 * ban sent by another user). These might take away someone's ability to act.
 */
export function isPowerEvent(event: RoomEvent): boolean {
  if (event.state_key !== '' && event.type !== 'm.room.member') return false;
  switch (event.type) {
    case 'm.room.power_levels':
    case 'm.room.join_rules':
      return event.state_key === '';
    case 'm.room.member': {
      const m = event.content?.membership;
      return (m === 'leave' || m === 'ban') && event.sender !== event.state_key;
    }
    default:
      return false;
  }
}
