import { badJson, invalidParam } from '../errors.js';
import { roomPasses, type RoomEventFilter } from '../rooms/event-filter.js';
import {
  isPlainObject, objectBody, optionalBoolean, optionalInteger, optionalObject, optionalString, optionalStringArray, requireObject, requireString,
  type JsonBody,
} from '../validation.js';

/** The keys the spec lets a client search, and the one event type whose content each is read from (as Synapse indexes them). */
export const SEARCH_KEYS = {
  'content.body': 'm.room.message',
  'content.name': 'm.room.name',
  'content.topic': 'm.room.topic',
} as const;
export type SearchKey = keyof typeof SEARCH_KEYS;

export type GroupKey = 'room_id' | 'sender';

/** The part of a RoomEventFilter search reads (lazy loading and thread counts mean nothing here). */
export type SearchFilter = Pick<RoomEventFilter, 'limit' | 'types' | 'not_types' | 'senders' | 'not_senders' | 'rooms' | 'not_rooms' | 'contains_url'>;

/** search_categories.room_events, checked. */
export interface RoomEventsCriteria {
  searchTerm: string;
  keys: SearchKey[];
  filter: SearchFilter;
  orderBy: 'rank' | 'recent';
  /** Absent when the client asked for no context. */
  eventContext?: { beforeLimit: number; afterLimit: number; includeProfile: boolean };
  includeState: boolean;
  groupBy: GroupKey[];
}

const DEFAULT_CONTEXT_LIMIT = 5;
/** Context is a few events around each result; more belongs to /context or /messages. */
const MAX_CONTEXT_LIMIT = 100;

/**
 * The request body of POST /search. Returns undefined when no category is asked for (the
 * spec makes room_events optional; the answer is then an empty search_categories).
 * Wrong types are M_BAD_JSON, values outside the spec's enums M_INVALID_PARAM, and a
 * category the spec does not define a 400 M_INVALID_PARAM (a client asking for it would
 * otherwise take silence for "no results").
 */
export function parseSearchRequest(raw: unknown): RoomEventsCriteria | undefined {
  const body = objectBody(raw, false);
  const categories = requireObject(body, 'search_categories');
  const unknown = Object.keys(categories).filter((k) => k !== 'room_events');
  if (unknown.length > 0) throw invalidParam(`Unknown search categories: ${unknown.join(', ')} (this server searches room_events)`);
  const roomEvents = optionalObject(categories, 'room_events');
  if (!roomEvents) return undefined;
  return parseRoomEvents(roomEvents);
}

function parseRoomEvents(c: JsonBody): RoomEventsCriteria {
  const searchTerm = requireString(c, 'search_term');
  const keys = optionalStringArray(c, 'keys') ?? (Object.keys(SEARCH_KEYS) as SearchKey[]);
  for (const key of keys) {
    if (!(key in SEARCH_KEYS)) throw invalidParam(`"${key}" in "keys" is not one of ${Object.keys(SEARCH_KEYS).join(', ')}`);
  }
  const orderBy = optionalString(c, 'order_by') ?? 'rank';
  if (orderBy !== 'rank' && orderBy !== 'recent') throw invalidParam('"order_by" must be "rank" or "recent"');
  return {
    searchTerm,
    keys: [...new Set(keys)] as SearchKey[],
    filter: parseFilter(c.filter),
    orderBy,
    eventContext: parseEventContext(optionalObject(c, 'event_context')),
    includeState: optionalBoolean(c, 'include_state') ?? false,
    groupBy: parseGroupings(optionalObject(c, 'groupings')),
  };
}

function parseFilter(value: unknown): SearchFilter {
  if (value === undefined || value === null) return {};
  if (!isPlainObject(value)) throw badJson('"filter" must be a RoomEventFilter object');
  const filter: SearchFilter = {};
  const limit = optionalInteger(value, 'limit');
  if (limit !== undefined) {
    if (limit < 0) throw invalidParam('"filter.limit" must be a positive integer');
    filter.limit = limit;
  }
  for (const key of ['types', 'not_types', 'senders', 'not_senders', 'rooms', 'not_rooms'] as const) {
    const list = optionalStringArray(value, key);
    if (list !== undefined) filter[key] = list;
  }
  const containsUrl = optionalBoolean(value, 'contains_url');
  if (containsUrl !== undefined) filter.contains_url = containsUrl;
  // Checked for their type only: they change nothing in a search.
  for (const key of ['lazy_load_members', 'include_redundant_members', 'unread_thread_notifications']) optionalBoolean(value, key);
  return filter;
}

function parseEventContext(value: JsonBody | undefined): RoomEventsCriteria['eventContext'] {
  if (!value) return undefined;
  const limit = (key: string): number => {
    const n = optionalInteger(value, key) ?? DEFAULT_CONTEXT_LIMIT;
    if (n < 0) throw invalidParam(`"event_context.${key}" must not be negative`);
    return Math.min(n, MAX_CONTEXT_LIMIT);
  };
  return { beforeLimit: limit('before_limit'), afterLimit: limit('after_limit'), includeProfile: optionalBoolean(value, 'include_profile') ?? false };
}

function parseGroupings(value: JsonBody | undefined): GroupKey[] {
  if (!value) return [];
  const groupBy = value.group_by;
  if (groupBy === undefined || groupBy === null) return [];
  if (!Array.isArray(groupBy)) throw badJson('"groupings.group_by" must be a list of {"key": ...} objects');
  const keys: GroupKey[] = [];
  for (const group of groupBy) {
    if (!isPlainObject(group)) throw badJson('"groupings.group_by" must be a list of {"key": ...} objects');
    const key = requireString(group, 'key');
    if (key !== 'room_id' && key !== 'sender') throw invalidParam(`"${key}" is not a group key (room_id or sender)`);
    if (!keys.includes(key)) keys.push(key);
  }
  return keys;
}

function typeMatches(pattern: string, type: string): boolean {
  return pattern.endsWith('*') ? type.startsWith(pattern.slice(0, -1)) : pattern === type;
}

/** The event types to look in: those of the searched keys that the filter's types and not_types let through. */
export function searchedTypes(keys: readonly SearchKey[], filter: SearchFilter): string[] {
  return keys
    .map((k) => SEARCH_KEYS[k])
    .filter((type) => !filter.not_types?.some((p) => typeMatches(p, type)))
    .filter((type) => !filter.types || filter.types.some((p) => typeMatches(p, type)));
}

/** Of the rooms the user is joined to, those the filter's rooms and not_rooms let through. */
export function searchedRooms(joined: readonly string[], filter: SearchFilter): string[] {
  return joined.filter((roomId) => roomPasses(filter, roomId));
}
