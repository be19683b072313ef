import { badJson, invalidParam, missingParam, notJson } from './errors.js';

/**
 * Request body checks. Each throws the spec's error for a body that is valid JSON but wrong:
 * M_MISSING_PARAM when a required key is absent, M_BAD_JSON or M_INVALID_PARAM when a value has
 * the wrong type or form. Called before anything is written, so a bad body changes nothing.
 */
export type JsonBody = Record<string, unknown>;

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The request body as an object; an absent body counts as `{}` where the spec allows it. */
export function objectBody(body: unknown, allowEmpty = true): JsonBody {
  if (body === undefined || body === null || body === '') {
    if (allowEmpty) return {};
    // An empty body is not JSON at all (M_NOT_JSON, as Synapse); `null` is JSON of the wrong shape.
    if (body === null) throw badJson('the request body must be a JSON object, not null');
    throw notJson('the request needs a JSON object body; it was empty');
  }
  if (!isPlainObject(body)) throw badJson('the request body must be a JSON object');
  return body;
}

export function requireString(body: JsonBody, key: string): string {
  const value = body[key];
  if (value === undefined || value === null) throw missingParam(`missing "${key}"`);
  if (typeof value !== 'string') throw badJson(`"${key}" must be a string`);
  return value;
}

export function optionalString(body: JsonBody, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw badJson(`"${key}" must be a string`);
  return value;
}

export function optionalBoolean(body: JsonBody, key: string): boolean | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw badJson(`"${key}" must be true or false`);
  return value;
}

export function requireBoolean(body: JsonBody, key: string): boolean {
  const value = optionalBoolean(body, key);
  if (value === undefined) throw missingParam(`missing "${key}"`);
  return value;
}

export function optionalInteger(body: JsonBody, key: string): number | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw badJson(`"${key}" must be an integer`);
  return value;
}

export function optionalObject(body: JsonBody, key: string): JsonBody | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (!isPlainObject(value)) throw badJson(`"${key}" must be a JSON object`);
  return value;
}

export function requireObject(body: JsonBody, key: string): JsonBody {
  const value = optionalObject(body, key);
  if (value === undefined) throw missingParam(`missing "${key}"`);
  return value;
}

export function optionalStringArray(body: JsonBody, key: string): string[] | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw badJson(`"${key}" must be a list of strings`);
  return value as string[];
}

/** A query-string integer (limits, timeouts): absent gives the default, junk gives M_INVALID_PARAM. */
export function queryInteger(value: unknown, name: string, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  if (typeof value !== 'string' || !/^-?\d+$/.test(value)) throw invalidParam(`query parameter "${name}" must be an integer`);
  return Number(value);
}

const USER_ID = /^@[^:\s]+:[^\s]+$/;
const ROOM_ID = /^![^\s]+$/;

export function isUserId(value: unknown): value is string {
  return typeof value === 'string' && USER_ID.test(value) && Buffer.byteLength(value) <= 255;
}

export function isRoomId(value: unknown): value is string {
  return typeof value === 'string' && ROOM_ID.test(value) && Buffer.byteLength(value) <= 255;
}

export function requireRoomIdParam(roomId: string): string {
  if (!isRoomId(roomId)) throw invalidParam(`"${roomId}" is not a room id`);
  return roomId;
}

export function requireUserIdParam(userId: string): string {
  if (!isUserId(userId)) throw invalidParam(`"${userId}" is not a user id`);
  return userId;
}

/** The server part of a user, room or event id: everything after the first colon. */
export function serverNameOf(id: string): string {
  return id.slice(id.indexOf(':') + 1);
}
