/** Reading m.room.power_levels content for client-side permission checks (directory, aliases). */
type Json = Record<string, unknown>;

function int(value: unknown, fallback: number): number {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return Number(value);
  return fallback;
}

/**
 * Whether `userId` may send a state event of `type`. Without power levels only the creator
 * may. `privilegedCreators` are room v12 creators, whose power is unlimited.
 */
export function maySendState(powerLevels: Json | undefined, userId: string, type: string, creator: string, privilegedCreators: string[] = []): boolean {
  if (privilegedCreators.includes(userId)) return true;
  if (!powerLevels) return userId === creator;
  const users = (powerLevels.users ?? {}) as Json;
  const power = userId in users ? int(users[userId], 0) : int(powerLevels.users_default, 0);
  const events = (powerLevels.events ?? {}) as Json;
  const needed = type in events ? int(events[type], 50) : int(powerLevels.state_default, 50);
  return power >= needed;
}
