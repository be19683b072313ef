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
    stringList(room, 'rooms', 'filter.room');
    stringList(room, 'not_rooms', 'filter.room');
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
  for (const key of ['types', 'not_types', 'senders', 'not_senders']) stringList(value, key, where);
}

function roomEventFilter(value: unknown, where: string): void {
  if (value === undefined) return;
  eventFilter(value, where);
  const filter = value as Record<string, unknown>;
  stringList(filter, 'rooms', where);
  stringList(filter, 'not_rooms', where);
  for (const key of ['contains_url', 'include_redundant_members', 'lazy_load_members', 'unread_thread_notifications']) boolean(filter, key, where);
}

function stringList(object: Record<string, unknown>, key: string, where: string): void {
  const value = object[key];
  if (value === undefined) return;
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw badJson(`${where}.${key} must be a list of strings`);
}

function boolean(object: Record<string, unknown>, key: string, where: string): void {
  const value = object[key];
  if (value !== undefined && typeof value !== 'boolean') throw badJson(`${where}.${key} must be true or false`);
}
