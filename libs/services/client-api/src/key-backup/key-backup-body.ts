import { badJson, invalidParam, missingParam } from '../errors.js';
import { isPlainObject, isRoomId, requireObject, requireString, type JsonBody } from '../validation.js';

/**
 * Parsing of the server-side key backup request bodies and parameters. Everything is checked
 * before anything is written, so a bad request changes nothing.
 */

/** The only backup algorithm the spec defines (the enum of `algorithm` in every backup schema). */
export const MEGOLM_BACKUP_V1 = 'm.megolm_backup.v1.curve25519-aes-sha2';

export interface BackupVersionBody {
  algorithm: string;
  authData: JsonBody;
  /** PUT /room_keys/version/{version} only: the optional `version` of the body. */
  version?: string;
}

/** One session's key data (the spec's KeyBackupData). */
export interface KeyBackupData {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: JsonBody;
}

export interface UploadedKey extends KeyBackupData {
  roomId: string;
  sessionId: string;
}

/**
 * The body of POST /room_keys/version and PUT /room_keys/version/{version}. For the spec's
 * algorithm, m.megolm_backup.v1.curve25519-aes-sha2, the auth_data must carry the
 * `public_key` clients encrypt to (spec: required), else the backup is unusable. Another
 * algorithm is stored as given, as Synapse does: the server never reads the keys, and test
 * suites (Complement's replacement-rules test makes an "m.megolm_backup.v1" backup with
 * placeholder auth_data) and newer clients rely on that.
 */
export function parseBackupVersionBody(body: JsonBody): BackupVersionBody {
  const algorithm = requireString(body, 'algorithm');
  const authData = requireObject(body, 'auth_data');
  if (algorithm === '') throw invalidParam('"algorithm" must not be empty');
  if (algorithm === MEGOLM_BACKUP_V1) {
    const publicKey = authData.public_key;
    if (publicKey === undefined || publicKey === null) throw missingParam('missing "auth_data.public_key"');
    if (typeof publicKey !== 'string' || publicKey === '') throw badJson('"auth_data.public_key" must be a non-empty string');
  }
  if (authData.signatures !== undefined && !isPlainObject(authData.signatures)) throw badJson('"auth_data.signatures" must be a JSON object');
  storable(authData, '"auth_data"');
  const version = body.version === null ? undefined : body.version;
  if (version !== undefined && typeof version !== 'string') throw badJson('"version" must be a string');
  return { algorithm, authData, ...(version === undefined ? {} : { version }) };
}

/** A JSON string escape of U+0000 not itself escaped: PostgreSQL's jsonb cannot hold that character. */
const NUL_ESCAPE = /(?:^|[^\\])(?:\\\\)*\\u0000/;

/** Refuses (400 M_BAD_JSON) an object the database cannot store as given. */
function storable(value: JsonBody, what: string): void {
  if (NUL_ESCAPE.test(JSON.stringify(value))) throw badJson(`${what} contains the character U+0000, which cannot be stored`);
}

/** The `version` query parameter of the /room_keys/keys endpoints (required: 400 M_MISSING_PARAM). */
export function requireVersionQuery(value: unknown): string {
  if (value === undefined || value === '') throw missingParam('missing query parameter "version"');
  if (typeof value !== 'string') throw invalidParam('query parameter "version" must be given once');
  return value;
}

/**
 * A version as the server numbers them (1, 2, ...), or undefined for anything else: such a
 * version cannot exist, so the caller answers 404 as for any unknown version.
 */
export function versionNumber(version: string): number | undefined {
  if (!/^[1-9][0-9]{0,14}$/.test(version)) return undefined;
  return Number(version);
}

function nonNegativeInteger(value: unknown, where: string, key: string): number {
  if (value === undefined || value === null) throw missingParam(`missing "${key}" ${where}`);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw invalidParam(`"${key}" ${where} must be a non-negative integer`);
  return value;
}

/** One KeyBackupData object; `where` names it in error messages. */
export function parseKeyBackupData(value: unknown, where: string): KeyBackupData {
  if (!isPlainObject(value)) throw badJson(`the key data ${where} must be a JSON object`);
  const first_message_index = nonNegativeInteger(value.first_message_index, where, 'first_message_index');
  const forwarded_count = nonNegativeInteger(value.forwarded_count, where, 'forwarded_count');
  const isVerified = value.is_verified;
  if (isVerified === undefined || isVerified === null) throw missingParam(`missing "is_verified" ${where}`);
  // Synapse answers a non-boolean is_verified with M_INVALID_PARAM; the other fields follow it.
  if (typeof isVerified !== 'boolean') throw invalidParam(`"is_verified" ${where} must be true or false`);
  const sessionData = value.session_data;
  if (sessionData === undefined || sessionData === null) throw missingParam(`missing "session_data" ${where}`);
  if (!isPlainObject(sessionData)) throw invalidParam(`"session_data" ${where} must be a JSON object`);
  storable(sessionData, `"session_data" ${where}`);
  return { first_message_index, forwarded_count, is_verified: isVerified, session_data: sessionData };
}

function parseRoomSessions(roomId: string, room: unknown): UploadedKey[] {
  if (!isRoomId(roomId)) throw invalidParam(`"${roomId}" is not a room id`);
  if (!isPlainObject(room)) throw badJson(`the backup of room ${roomId} must be a JSON object`);
  const sessions = room.sessions;
  if (sessions === undefined || sessions === null) throw missingParam(`missing "sessions" for room ${roomId}`);
  if (!isPlainObject(sessions)) throw badJson(`"sessions" of room ${roomId} must be a JSON object`);
  return Object.entries(sessions).map(([sessionId, data]) => {
    if (sessionId === '') throw invalidParam(`an empty session id in room ${roomId}`);
    return { roomId, sessionId, ...parseKeyBackupData(data, `for session ${sessionId} in room ${roomId}`) };
  });
}

/** PUT /room_keys/keys: `{rooms: {roomId: {sessions: {sessionId: KeyBackupData}}}}`. */
export function parseAllRoomsUpload(body: JsonBody): UploadedKey[] {
  const rooms = requireObject(body, 'rooms');
  return Object.entries(rooms).flatMap(([roomId, room]) => parseRoomSessions(roomId, room));
}

/** PUT /room_keys/keys/{roomId}: `{sessions: {sessionId: KeyBackupData}}`. */
export function parseRoomUpload(roomId: string, body: JsonBody): UploadedKey[] {
  return parseRoomSessions(roomId, body);
}

/** PUT /room_keys/keys/{roomId}/{sessionId}: one KeyBackupData. */
export function parseSessionUpload(roomId: string, sessionId: string, body: JsonBody): UploadedKey[] {
  if (!isRoomId(roomId)) throw invalidParam(`"${roomId}" is not a room id`);
  return [{ roomId, sessionId, ...parseKeyBackupData(body, `for session ${sessionId} in room ${roomId}`) }];
}

/**
 * The spec's rule for a key uploaded for a session the backup already has a key for: keep the
 * one with is_verified true; if equal, the lower first_message_index; if equal too, the lower
 * forwarded_count. Ties keep the stored key, so re-uploading the same key changes nothing (and
 * leaves the etag alone). (Synapse compares the three fields without the "if equal" steps,
 * so there an unverified key with a lower index displaces a verified one; the spec does not.)
 */
export function replacesStoredKey(uploaded: KeyBackupData, stored: Omit<KeyBackupData, 'session_data'>): boolean {
  if (uploaded.is_verified !== stored.is_verified) return uploaded.is_verified;
  if (uploaded.first_message_index !== stored.first_message_index) return uploaded.first_message_index < stored.first_message_index;
  return uploaded.forwarded_count < stored.forwarded_count;
}
