import { isValidRoomId, isValidUserId } from '@tessera/protocol';
import { badJson } from '../errors.js';
import { isPlainObject } from '../validation.js';

/**
 * Checks a filter against the spec's Filter schema (POST /user/{userId}/filter and /sync's
 * inline filter). Throws M_BAD_JSON naming the first wrong field. Unknown fields pass, as the
 * spec allows extensions.
 */
export function validateFilter(filter: unknown): Record<string, unknown> {
  if (!isPlainObject(filter)) throw badJson('The filter must be a JSON object');
  stringList(filter, 'event_fields', 'filter');
  if (filter.event_format !== undefined && filter.event_format !== 'client' && filter.event_format !== 'federation') {
    throw badJson('filter.event_format must be "client" or "federation"');
  }
  eventFilter(filter.presence, 'filter.presence');
  eventFilter(filter.account_data, 'filter.account_data');
  if (filter.room !== undefined) {
    const room = filter.room;
    if (!isPlainObject(room)) throw badJson('filter.room must be a JSON object');
    idList(room, 'rooms', 'filter.room', isValidRoomId, 'room IDs');
    idList(room, 'not_rooms', 'filter.room', isValidRoomId, 'room IDs');
    boolean(room, 'include_leave', 'filter.room');
    for (const key of ['ephemeral', 'state', 'timeline', 'account_data']) roomEventFilter(room[key], `filter.room.${key}`);
  }
  return filter;
}

function eventFilter(value: unknown, where: string): void {
  if (value === undefined) return;
  if (!isPlainObject(value)) throw badJson(`${where} must be a JSON object`);
  if (value.limit !== undefined && (typeof value.limit !== 'number' || !Number.isInteger(value.limit) || value.limit < 0)) {
    throw badJson(`${where}.limit must be a non-negative integer`);
  }
  for (const key of ['types', 'not_types']) stringList(value, key, where);
  for (const key of ['senders', 'not_senders']) idList(value, key, where, isValidUserId, 'user IDs');
}

function roomEventFilter(value: unknown, where: string): void {
  if (value === undefined) return;
  eventFilter(value, where);
  const filter = value as Record<string, unknown>;
  idList(filter, 'rooms', where, isValidRoomId, 'room IDs');
  idList(filter, 'not_rooms', where, isValidRoomId, 'room IDs');
  for (const key of ['contains_url', 'include_redundant_members', 'lazy_load_members', 'unread_thread_notifications']) boolean(filter, key, where);
}

function stringList(object: Record<string, unknown>, key: string, where: string): void {
  const value = object[key];
  if (value === undefined) return;
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw badJson(`${where}.${key} must be a list of strings`);
}

/** A list of Matrix IDs (as Synapse's filter schema: senders are user IDs, rooms room IDs; a wrong one is 400). */
function idList(object: Record<string, unknown>, key: string, where: string, valid: (id: string) => boolean, what: string): void {
  stringList(object, key, where);
  const value = object[key] as string[] | undefined;
  if (value?.some((id) => !valid(id))) throw badJson(`${where}.${key} must be a list of ${what}`);
}

function boolean(object: Record<string, unknown>, key: string, where: string): void {
  const value = object[key];
  if (value !== undefined && typeof value !== 'boolean') throw badJson(`${where}.${key} must be true or false`);
}
