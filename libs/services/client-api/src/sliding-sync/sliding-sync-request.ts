import { badJson, invalidParam } from '../errors.js';
import { isPlainObject, isRoomId, type JsonBody } from '../validation.js';
import { parseRequiredState, type RequiredState } from './required-state.js';
import type { ListFilters, Range } from './room-list.js';

/** MSC4186 limits: more lists or subscriptions than this is M_INVALID_PARAM. */
const MAX_LISTS = 100;
const MAX_SUBSCRIPTIONS = 100;
/** The server caps timeline_limit (the MSC allows it); /sync's maximum. */
export const MAX_TIMELINE_LIMIT = 100;
/** Longest long-poll (as /sync). */
export const MAX_TIMEOUT_MS = 300_000;
const DEFAULT_TO_DEVICE_LIMIT = 100;

/** What a room is sent with: the combined config of every list and subscription that matched it. */
export interface RoomConfig {
  timelineLimit: number;
  requiredState: RequiredState[];
}

export interface ListConfig {
  /** Undefined: the whole list (no range asked). */
  ranges?: Range[];
  config: RoomConfig;
  filters: ListFilters;
}

/** Which rooms a room-scoped extension covers: list names and room ids, `*` for all; undefined: every room in the response's lists and subscriptions. */
export interface ExtensionScope {
  lists?: string[];
  rooms?: string[];
}

export interface SlidingSyncExtensions {
  toDevice?: { since?: number; limit: number };
  e2ee: boolean;
  accountData?: ExtensionScope;
  receipts?: ExtensionScope;
  typing?: ExtensionScope;
}

export interface SlidingSyncRequest {
  connId: string;
  pos?: string;
  timeoutMs: number;
  lists: Map<string, ListConfig>;
  /** Rooms subscribed to by this request (subscriptions last for the connection; see SlidingSyncService). */
  subscriptions: Map<string, RoomConfig>;
  /** Subscriptions of earlier requests to end. */
  unsubscribeRooms: string[];
  extensions: SlidingSyncExtensions;
}

/**
 * The request body (and the `pos`/`timeout` query parameters Element X sends), checked. Both
 * the Synapse-era shape clients speak today (`ranges`, `[type, state_key]` pairs, `is_invite`)
 * and the MSC's current one (`range`, {include, exclude}, `is_invited`, pos and timeout in the
 * body) are read.
 */
export function parseSlidingSyncRequest(raw: unknown, query: { pos?: string; timeout?: string }): SlidingSyncRequest {
  if (raw !== undefined && raw !== null && !isPlainObject(raw)) throw badJson('the request body must be a JSON object');
  const body: JsonBody = (raw as JsonBody | undefined) ?? {};
  const connId = body.conn_id ?? '';
  if (typeof connId !== 'string') throw badJson('"conn_id" must be a string');

  let pos = query.pos;
  if (pos === undefined && body.pos !== undefined && body.pos !== null) {
    if (typeof body.pos !== 'string') throw badJson('"pos" must be a string');
    pos = body.pos;
  }
  if (pos === '') pos = undefined;

  let timeoutMs = 0;
  if (query.timeout !== undefined && query.timeout !== '') {
    if (!/^\d+$/.test(query.timeout)) throw invalidParam('query parameter "timeout" must be a non-negative integer');
    timeoutMs = Number(query.timeout);
  } else if (body.timeout !== undefined && body.timeout !== null) {
    if (typeof body.timeout !== 'number' || !Number.isSafeInteger(body.timeout) || body.timeout < 0) throw badJson('"timeout" must be a non-negative integer');
    timeoutMs = body.timeout;
  }

  const lists = new Map<string, ListConfig>();
  const rawLists = objectField(body, 'lists');
  if (Object.keys(rawLists).length > MAX_LISTS) throw invalidParam(`at most ${MAX_LISTS} lists`);
  for (const [name, value] of Object.entries(rawLists)) {
    if (!isPlainObject(value)) throw badJson(`lists.${name} must be an object`);
    lists.set(name, parseList(name, value));
  }

  const subscriptions = new Map<string, RoomConfig>();
  const rawSubs = objectField(body, 'room_subscriptions');
  if (Object.keys(rawSubs).length > MAX_SUBSCRIPTIONS) throw invalidParam(`at most ${MAX_SUBSCRIPTIONS} room subscriptions`);
  for (const [roomId, value] of Object.entries(rawSubs)) {
    if (!isRoomId(roomId)) throw invalidParam(`room_subscriptions: ${JSON.stringify(roomId)} is not a room id`);
    if (!isPlainObject(value)) throw badJson(`room_subscriptions.${roomId} must be an object`);
    subscriptions.set(roomId, parseRoomConfig(value, `room_subscriptions.${roomId}`));
  }

  const unsubscribe = body.unsubscribe_rooms ?? [];
  if (!Array.isArray(unsubscribe) || !unsubscribe.every((r) => typeof r === 'string')) throw badJson('"unsubscribe_rooms" must be a list of room ids');

  return {
    connId,
    pos,
    timeoutMs: Math.min(timeoutMs, MAX_TIMEOUT_MS),
    lists,
    subscriptions,
    unsubscribeRooms: unsubscribe as string[],
    extensions: parseExtensions(objectField(body, 'extensions')),
  };
}

function objectField(body: JsonBody, key: string): JsonBody {
  const value = body[key];
  if (value === undefined || value === null) return {};
  if (!isPlainObject(value)) throw badJson(`"${key}" must be a JSON object`);
  return value;
}

function parseRoomConfig(value: JsonBody, where: string): RoomConfig {
  const limit = value.timeline_limit ?? 0;
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 0) throw badJson(`${where}.timeline_limit must be a non-negative integer`);
  return { timelineLimit: Math.min(limit, MAX_TIMELINE_LIMIT), requiredState: [parseRequiredState(value.required_state, where)] };
}

function parseList(name: string, value: JsonBody): ListConfig {
  const where = `lists.${name}`;
  const list: ListConfig = { config: parseRoomConfig(value, where), filters: parseFilters(value.filters, where) };
  if (value.ranges !== undefined && value.ranges !== null) {
    if (!Array.isArray(value.ranges)) throw badJson(`${where}.ranges must be a list of [start, end] pairs`);
    list.ranges = value.ranges.map((r) => parseRange(r, `${where}.ranges`));
  } else if (value.range !== undefined && value.range !== null) {
    list.ranges = [parseRange(value.range, `${where}.range`)];
  }
  return list;
}

function parseRange(value: unknown, where: string): Range {
  if (!Array.isArray(value) || value.length !== 2 || !value.every((n) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0)) {
    throw badJson(`${where}: a range is [start, end], two non-negative integers`);
  }
  const [start, end] = value as [number, number];
  if (start > end) throw invalidParam(`${where}: range [${start}, ${end}] ends before it starts`);
  return [start, end];
}

function parseFilters(value: unknown, where: string): ListFilters {
  if (value === undefined || value === null) return {};
  if (!isPlainObject(value)) throw badJson(`${where}.filters must be an object`);
  const flag = (key: string): boolean | undefined => {
    const v = value[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') throw badJson(`${where}.filters.${key} must be true or false`);
    return v;
  };
  const types = (key: string): Array<string | null> | undefined => {
    const v = value[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((t) => t === null || typeof t === 'string')) throw badJson(`${where}.filters.${key} must be a list of strings or null`);
    return v as Array<string | null>;
  };
  const filters: ListFilters = {};
  const isDm = flag('is_dm');
  const isInvite = flag('is_invite') ?? flag('is_invited');
  const isEncrypted = flag('is_encrypted');
  const strings = (key: string): string[] | undefined => {
    const v = value[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || !v.every((t) => typeof t === 'string')) throw badJson(`${where}.filters.${key} must be a list of strings`);
    return v as string[];
  };
  const roomTypes = types('room_types');
  const notRoomTypes = types('not_room_types');
  const spaces = strings('spaces');
  const tags = strings('tags');
  const notTags = strings('not_tags');
  if (isDm !== undefined) filters.isDm = isDm;
  if (isInvite !== undefined) filters.isInvite = isInvite;
  if (isEncrypted !== undefined) filters.isEncrypted = isEncrypted;
  if (roomTypes !== undefined) filters.roomTypes = roomTypes;
  if (notRoomTypes !== undefined) filters.notRoomTypes = notRoomTypes;
  if (spaces !== undefined) filters.spaces = spaces;
  if (tags !== undefined) filters.tags = tags;
  if (notTags !== undefined) filters.notTags = notTags;
  return filters;
}

function enabled(ext: JsonBody, key: string): JsonBody | undefined {
  const value = ext[key];
  if (value === undefined || value === null) return undefined;
  if (!isPlainObject(value)) throw badJson(`extensions.${key} must be an object`);
  if (value.enabled !== undefined && typeof value.enabled !== 'boolean') throw badJson(`extensions.${key}.enabled must be true or false`);
  return value.enabled === true ? value : undefined;
}

function scope(value: JsonBody, where: string): ExtensionScope {
  const out: ExtensionScope = {};
  for (const key of ['lists', 'rooms'] as const) {
    const v = value[key];
    if (v === undefined || v === null) continue;
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw badJson(`extensions.${where}.${key} must be a list of strings`);
    out[key] = v as string[];
  }
  return out;
}

function parseExtensions(ext: JsonBody): SlidingSyncExtensions {
  const out: SlidingSyncExtensions = { e2ee: enabled(ext, 'e2ee') !== undefined };
  const toDevice = enabled(ext, 'to_device');
  if (toDevice) {
    const { since, limit } = toDevice;
    if (since !== undefined && since !== null && (typeof since !== 'string' || !/^\d{1,15}$/.test(since))) {
      throw invalidParam('extensions.to_device.since is not a to-device token from this server');
    }
    if (limit !== undefined && limit !== null && (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1)) throw badJson('extensions.to_device.limit must be a positive integer');
    out.toDevice = { limit: Math.min(typeof limit === 'number' ? limit : DEFAULT_TO_DEVICE_LIMIT, 1000) };
    if (typeof since === 'string') out.toDevice.since = Number(since);
  }
  for (const [key, field] of [['account_data', 'accountData'], ['receipts', 'receipts'], ['typing', 'typing']] as const) {
    const value = enabled(ext, key);
    if (value) out[field] = scope(value, key);
  }
  return out;
}
