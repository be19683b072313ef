/**
 * Power levels in a room upgrade, as Synapse computes them: the copy for the new room (the
 * upgrading user raised far enough to send the copied state, creators left out where the
 * new version makes them privileged) and the restricted levels that silence the old room.
 */
import { parseLevel, type RoomVersion } from '@tessera/protocol';

type Json = Record<string, unknown>;

const LEVEL_KEYS = ['users_default', 'events_default', 'state_default', 'ban', 'redact', 'kick', 'invite'] as const;
const MAP_KEYS = ['users', 'events', 'notifications'] as const;

/**
 * A copy of power levels content with every level an integer, as the old room's version reads
 * it (v1-9 allowed "50" and 50.5; v10+ need integers). Levels that do not parse are dropped,
 * so the copy is valid in any version; other keys are kept as they are.
 */
export function integerPowerLevels(content: Json, version: RoomVersion): Json {
  const copy: Json = { ...content };
  for (const key of LEVEL_KEYS) {
    if (!(key in copy)) continue;
    const level = parseLevel(copy[key], version);
    if (level === undefined) delete copy[key];
    else copy[key] = level;
  }
  for (const key of MAP_KEYS) {
    const map = copy[key];
    if (map === undefined) continue;
    const levels: Record<string, number> = {};
    if (map !== null && typeof map === 'object' && !Array.isArray(map)) {
      for (const [name, value] of Object.entries(map as Json)) {
        const level = parseLevel(value, version);
        if (level !== undefined) levels[name] = level;
      }
    }
    copy[key] = levels;
  }
  return copy;
}

function level(content: Json, key: string, fallback: number): number {
  const value = content[key];
  return typeof value === 'number' ? value : fallback;
}

function users(content: Json): Record<string, number> {
  return { ...((content.users ?? {}) as Record<string, number>) };
}

export interface NewRoomPowerLevels {
  /** Sent with the new room's initial state: the upgrading user can send every copied event. */
  initial: Json;
  /** What the new room keeps once the copy is done (the old room's levels). */
  final: Json;
}

/**
 * The new room's power levels from the old room's (already integer) ones.
 *
 * - To a version with privileged creators (v12), the creators (the upgrading user and the
 *   requested additional creators) are left out of `users`, which the auth rules demand; they
 *   need no raise.
 * - Otherwise the upgrading user is raised, for the copy only, to the highest level any copied
 *   event or a ban needs (Synapse: max(state_default, ban, events[*])).
 * - From a version with privileged creators to one without, an old-room creator doing the
 *   upgrade had unlimited power that `users` never listed: kept as the room's top level
 *   (at least 100) so that restoring the old levels does not demote them. Other old
 *   creators are not carried over, as the spec has it for additional creators.
 */
export function newRoomPowerLevels(
  oldLevels: Json,
  upgrader: string,
  newVersion: RoomVersion,
  options: { additionalCreators: string[]; upgraderWasPrivilegedCreator: boolean },
): NewRoomPowerLevels {
  const final: Json = { ...oldLevels, users: users(oldLevels) };
  if (newVersion.privilegedCreators) {
    const kept = users(final);
    for (const creator of [upgrader, ...options.additionalCreators]) delete kept[creator];
    final.users = kept;
    return { initial: final, final };
  }
  const events = Object.values((oldLevels.events ?? {}) as Record<string, number>);
  const needed = Math.max(level(oldLevels, 'state_default', 50), level(oldLevels, 'ban', 50), ...events, 0);
  if (options.upgraderWasPrivilegedCreator) {
    const finalUsers = users(final);
    finalUsers[upgrader] = Math.max(100, needed, ...Object.values(finalUsers));
    final.users = finalUsers;
  }
  const finalUsers = users(final);
  const current = finalUsers[upgrader] ?? level(oldLevels, 'users_default', 0);
  if (current >= needed) return { initial: final, final };
  return { initial: { ...final, users: { ...finalUsers, [upgrader]: needed } }, final };
}

/**
 * The old room's levels once it is replaced: sending events and inviting need more than the
 * default user has (the greater of 50 and users_default + 1, as the spec suggests), or
 * undefined when they already do.
 */
export function restrictedOldRoomPowerLevels(levels: Json): Json | undefined {
  const restricted = Math.max(level(levels, 'users_default', 0) + 1, 50);
  const changed: Json = { ...levels };
  let updated = false;
  for (const key of ['invite', 'events_default']) {
    if (level(levels, key, 0) < restricted) {
      changed[key] = restricted;
      updated = true;
    }
  }
  return updated ? changed : undefined;
}
