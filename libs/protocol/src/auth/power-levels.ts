/**
 * Reading power levels out of m.room.power_levels and m.room.create content, as the auth rules
 * and the state resolution orderings see them. Parsed content is memoized per event object, so
 * a stream of checks against the same state parses each power levels event once.
 */
import type { RoomEvent } from '../event-types.js';
import type { RoomVersion } from '../room-versions.js';

export const LEVEL_KEYS = ['users_default', 'events_default', 'state_default', 'ban', 'redact', 'kick', 'invite'] as const;
export type LevelKey = (typeof LEVEL_KEYS)[number];

/** Defaults when the power levels event exists but leaves a key out (spec: m.room.power_levels). */
const DEFAULTS: Record<LevelKey, number> = {
  users_default: 0,
  events_default: 0,
  state_default: 50,
  ban: 50,
  redact: 50,
  kick: 50,
  invite: 0,
};

export interface PowerLevels {
  /** Top-level levels that are present and valid. */
  readonly levels: Partial<Record<LevelKey, number>>;
  readonly users: ReadonlyMap<string, number>;
  readonly events: ReadonlyMap<string, number>;
  readonly notifications: ReadonlyMap<string, number>;
}

/**
 * A power level value as the room version reads it: v10+ only integers; v1-9 also strings that
 * hold an integer (and numbers are truncated, as implementations of those versions did).
 */
export function parseLevel(value: unknown, roomVersion: RoomVersion): number | undefined {
  if (typeof value === 'number') {
    if (roomVersion.integerPowerLevels) return Number.isInteger(value) ? value : undefined;
    return Number.isFinite(value) ? Math.trunc(value) : undefined;
  }
  if (!roomVersion.integerPowerLevels && typeof value === 'string' && /^\s*[+-]?\d+\s*$/.test(value)) {
    const n = Number.parseInt(value, 10);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  return undefined;
}

function levelMap(value: unknown, roomVersion: RoomVersion): Map<string, number> {
  const map = new Map<string, number>();
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return map;
  for (const [k, v] of Object.entries(value)) {
    const level = parseLevel(v, roomVersion);
    if (level !== undefined) map.set(k, level);
  }
  return map;
}

const strictCache = new WeakMap<object, PowerLevels>();
const lenientCache = new WeakMap<object, PowerLevels>();

/** The parsed content of a power levels event; entries that are not valid levels are left out. */
export function parsePowerLevels(content: Record<string, unknown>, roomVersion: RoomVersion): PowerLevels {
  const cache = roomVersion.integerPowerLevels ? strictCache : lenientCache;
  const hit = cache.get(content);
  if (hit) return hit;
  const levels: Partial<Record<LevelKey, number>> = {};
  for (const key of LEVEL_KEYS) {
    const level = parseLevel(content[key], roomVersion);
    if (level !== undefined) levels[key] = level;
  }
  const parsed: PowerLevels = {
    levels,
    users: levelMap(content.users, roomVersion),
    events: levelMap(content.events, roomVersion),
    notifications: levelMap(content.notifications, roomVersion),
  };
  cache.set(content, parsed);
  return parsed;
}

/**
 * The room's creators: v12 (privilegedCreators) the create event's sender plus
 * `additional_creators`; v11 the sender; v1-10 `content.creator`.
 */
export function roomCreators(create: RoomEvent | undefined, roomVersion: RoomVersion): string[] {
  if (!create) return [];
  if (roomVersion.privilegedCreators) {
    const extra = create.content.additional_creators;
    return [create.sender, ...(Array.isArray(extra) ? extra.filter((u): u is string => typeof u === 'string') : [])];
  }
  if (roomVersion.implicitRoomCreator) return [create.sender];
  return typeof create.content.creator === 'string' ? [create.content.creator] : [];
}

/**
 * What a set of auth state says about power: levels of users and of actions. Built once per
 * (power levels event, create event) pair and reused.
 */
export class PowerContext {
  private readonly pl: PowerLevels | undefined;
  private readonly creators: Set<string>;

  constructor(
    powerLevelsEvent: RoomEvent | undefined,
    create: RoomEvent | undefined,
    private readonly roomVersion: RoomVersion,
  ) {
    this.pl = powerLevelsEvent ? parsePowerLevels(powerLevelsEvent.content, roomVersion) : undefined;
    this.creators = new Set(roomCreators(create, roomVersion));
  }

  get hasPowerLevels(): boolean {
    return this.pl !== undefined;
  }

  /** A user's power level; v12 creators are infinitely powerful. */
  userLevel(userId: string): number {
    if (this.roomVersion.privilegedCreators && this.creators.has(userId)) return Infinity;
    if (!this.pl) return this.creators.has(userId) ? 100 : 0;
    return this.pl.users.get(userId) ?? this.pl.levels.users_default ?? 0;
  }

  /** The level named by a top-level key (ban, kick, invite, redact, ...). */
  level(key: LevelKey): number {
    // Without a power levels event, state_default is 0 (spec: m.room.power_levels).
    if (!this.pl) return key === 'state_default' ? 0 : DEFAULTS[key];
    return this.pl.levels[key] ?? DEFAULTS[key];
  }

  /** The level `notifications[key]` asks to notify the room (push rules' sender_notification_permission); 50 when absent. */
  notificationLevel(key: string): number {
    return this.pl?.notifications.get(key) ?? 50;
  }

  /** The level an event of this type needs (events[type], else state_default / events_default). */
  eventLevel(type: string, isState: boolean): number {
    const specific = this.pl?.events.get(type);
    if (specific !== undefined) return specific;
    return this.level(isState ? 'state_default' : 'events_default');
  }
}
