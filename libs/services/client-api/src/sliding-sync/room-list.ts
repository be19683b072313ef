/**
 * The server's list of a user's rooms (MSC4186 "Lists"): filtered by a list's filters, ordered
 * by recent activity, sliced by its ranges. Pure functions of what the service read.
 */

/** A room as the list sees it. */
export interface ListRoom {
  roomId: string;
  membership: string;
  /** Stream position of the last event the user may see in the room (their membership event when not joined). */
  activity: number;
  isDm: boolean;
  /** The m.room.create content's `type` (null: none); undefined when unknown (a remote invite without it). */
  roomType?: string | null;
  /** Whether the room has m.room.encryption; undefined when unknown. */
  encrypted?: boolean;
  /** The user's tags on the room (m.tag room account data); undefined: none, or not read (no list filters on tags). */
  tags?: ReadonlySet<string>;
}

/** MSC4186 SlidingRoomFilter, the fields this server applies. */
export interface ListFilters {
  isDm?: boolean;
  isInvite?: boolean;
  isEncrypted?: boolean;
  roomTypes?: Array<string | null>;
  notRoomTypes?: Array<string | null>;
  /** Space room ids: the room must be an m.space.child of one of them (the user joined to it). */
  spaces?: string[];
  tags?: string[];
  notTags?: string[];
}

/** What the filters need besides the room: the rooms that are children of the filter's spaces (for `spaces`). */
export interface FilterContext {
  spaceChildren?: ReadonlySet<string>;
}

/** Inclusive [start, end] index ranges into the filtered, sorted list. */
export type Range = readonly [number, number];

export function passesFilters(room: ListRoom, filters: ListFilters, context: FilterContext = {}): boolean {
  if (filters.isDm !== undefined && room.isDm !== filters.isDm) return false;
  if (filters.isInvite !== undefined && (room.membership === 'invite') !== filters.isInvite) return false;
  if (filters.isEncrypted !== undefined && (room.encrypted ?? false) !== filters.isEncrypted) return false;
  const type = room.roomType ?? null;
  // not_room_types wins over room_types (the MSC).
  if (filters.notRoomTypes && filters.notRoomTypes.includes(type)) return false;
  if (filters.roomTypes && !filters.roomTypes.includes(type)) return false;
  // Spaces are OR'd: a child of any of them (only direct children, subspaces are not walked).
  if (filters.spaces && !(context.spaceChildren?.has(room.roomId) ?? false)) return false;
  // not_tags wins over tags (the MSC); tags are OR'd.
  if (filters.notTags && filters.notTags.some((t) => room.tags?.has(t))) return false;
  if (filters.tags && !filters.tags.some((t) => room.tags?.has(t))) return false;
  return true;
}

/** Most recent activity first; the room id breaks ties so the order is stable between requests. */
export function sortByActivity<T extends Pick<ListRoom, 'roomId' | 'activity'>>(rooms: readonly T[]): T[] {
  return [...rooms].sort((a, b) => b.activity - a.activity || (a.roomId < b.roomId ? -1 : a.roomId > b.roomId ? 1 : 0));
}

/** The rooms of `sorted` within any of the ranges (all of them when `ranges` is undefined), in list order. */
export function roomsInRanges<T>(sorted: readonly T[], ranges: readonly Range[] | undefined): T[] {
  if (ranges === undefined) return [...sorted];
  const picked = new Set<number>();
  for (const [start, end] of ranges) {
    for (let i = Math.max(0, start); i <= Math.min(end, sorted.length - 1); i++) picked.add(i);
  }
  return [...picked].sort((a, b) => a - b).map((i) => sorted[i]!);
}
