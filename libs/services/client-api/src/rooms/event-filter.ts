/**
 * The spec's RoomEventFilter and EventFilter applied to events (sync timeline/state/ephemeral,
 * /messages, /context). Type patterns may end in `*` (the spec's wildcard).
 */
export interface RoomEventFilter {
  limit?: number;
  types?: string[];
  not_types?: string[];
  senders?: string[];
  not_senders?: string[];
  rooms?: string[];
  not_rooms?: string[];
  contains_url?: boolean;
  lazy_load_members?: boolean;
  include_redundant_members?: boolean;
  /** /sync only: per-thread counts in unread_thread_notifications. */
  unread_thread_notifications?: boolean;
}

export interface SyncFilter {
  event_fields?: string[];
  event_format?: 'client' | 'federation';
  presence?: RoomEventFilter;
  account_data?: RoomEventFilter;
  room?: {
    rooms?: string[];
    not_rooms?: string[];
    include_leave?: boolean;
    timeline?: RoomEventFilter;
    state?: RoomEventFilter;
    ephemeral?: RoomEventFilter;
    account_data?: RoomEventFilter;
  };
}

/** The spec: "A '*' can be used as a wildcard to match any sequence of characters" (anywhere in the pattern). */
function typeMatches(pattern: string, type: string): boolean {
  const star = pattern.indexOf('*');
  if (star < 0) return pattern === type;
  if (star === pattern.length - 1) return type.startsWith(pattern.slice(0, -1));
  const parts = pattern.split('*');
  const head = parts[0]!;
  const tail = parts[parts.length - 1]!;
  if (type.length < head.length + tail.length || !type.startsWith(head) || !type.endsWith(tail)) return false;
  let at = head.length;
  const end = type.length - tail.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const found = type.indexOf(parts[i]!, at);
    if (found < 0 || found + parts[i]!.length > end) return false;
    at = found + parts[i]!.length;
  }
  return true;
}

/** Whether the filter can drop an event of a room (so a timeline limit may need more events looked at). */
export function isSelective(filter: RoomEventFilter | undefined): boolean {
  return !!filter && (!!filter.types || !!filter.not_types || !!filter.senders || !!filter.not_senders || filter.contains_url !== undefined || !!filter.rooms || !!filter.not_rooms);
}

/**
 * The filter's event_fields applied to a serialized event (spec Filter.event_fields): only the
 * listed dot-separated paths are kept; `\.` is a literal dot in a field name.
 */
export function onlyFields(event: Record<string, unknown>, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of fields) {
    const path = splitFieldPath(field);
    let from: unknown = event;
    for (const key of path) from = isObject(from) && Object.hasOwn(from, key) ? from[key] : undefined;
    if (from === undefined) continue;
    let to = out;
    for (const key of path.slice(0, -1)) {
      if (!isObject(to[key])) to[key] = {};
      to = to[key] as Record<string, unknown>;
    }
    to[path[path.length - 1]!] = from;
  }
  return out;
}

function splitFieldPath(field: string): string[] {
  const path: string[] = [];
  let current = '';
  for (let i = 0; i < field.length; i++) {
    const c = field[i];
    if (c === '\\' && field[i + 1] === '.') {
      current += '.';
      i++;
    } else if (c === '.') {
      path.push(current);
      current = '';
    } else current += c;
  }
  path.push(current);
  return path;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether an event (by type, sender, room, content) passes the filter. */
export function eventPasses(
  filter: RoomEventFilter | undefined,
  event: { type: string; sender?: string; room_id?: string; content?: Record<string, unknown> },
): boolean {
  if (!filter) return true;
  if (filter.not_types?.some((p) => typeMatches(p, event.type))) return false;
  if (filter.types && !filter.types.some((p) => typeMatches(p, event.type))) return false;
  if (event.sender !== undefined) {
    if (filter.not_senders?.includes(event.sender)) return false;
    if (filter.senders && !filter.senders.includes(event.sender)) return false;
  }
  if (event.room_id !== undefined && !roomPasses(filter, event.room_id)) return false;
  if (filter.contains_url !== undefined) {
    const hasUrl = typeof event.content?.url === 'string';
    if (hasUrl !== filter.contains_url) return false;
  }
  return true;
}

export function roomPasses(filter: { rooms?: string[]; not_rooms?: string[] } | undefined, roomId: string): boolean {
  if (!filter) return true;
  if (filter.not_rooms?.includes(roomId)) return false;
  if (filter.rooms && !filter.rooms.includes(roomId)) return false;
  return true;
}

/** A filter's limit bounded to [1, max], or the default. */
export function filterLimit(filter: RoomEventFilter | undefined, fallback: number, max: number): number {
  const limit = filter?.limit;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit <= 0) return fallback;
  return Math.min(limit, max);
}
