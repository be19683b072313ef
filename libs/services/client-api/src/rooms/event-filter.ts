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

function typeMatches(pattern: string, type: string): boolean {
  return pattern.endsWith('*') ? type.startsWith(pattern.slice(0, -1)) : pattern === type;
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
