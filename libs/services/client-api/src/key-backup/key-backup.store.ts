import type { Queryable } from '@tessera/storage';
import type { KeyBackupData, UploadedKey } from './key-backup-body.js';

/**
 * SQL of the server-side key backup tables (client_api_room_keys_0001_backups). Writers call
 * lockOwner first in their transaction: it orders one user's backup writes, so the current
 * version cannot change under an upload and version numbers are handed out one at a time.
 */

type Json = Record<string, unknown>;

export interface StoredVersion {
  version: number;
  algorithm: string;
  auth_data: Json;
  etag: number;
  key_count: number;
}

export interface StoredKey extends KeyBackupData {
  room_id: string;
  session_id: string;
}

const VERSION_COLUMNS = 'version, algorithm, auth_data, etag, key_count';
const KEY_COLUMNS = 'room_id, session_id, first_message_index, forwarded_count, is_verified, session_data';

/** Locks the user's backup owner row (made on first use); returns the last version ever created. */
export async function lockOwner(tx: Queryable, userId: string): Promise<number> {
  const { rows } = await tx.query<{ last_version: number }>(
    `INSERT INTO room_keys_owners (user_id, last_version) VALUES ($1, 0)
     ON CONFLICT (user_id) DO UPDATE SET last_version = room_keys_owners.last_version
     RETURNING last_version`,
    [userId],
  );
  return rows[0]!.last_version;
}

/** The current backup: the user's latest version that is not deleted. */
export async function currentVersion(db: Queryable, userId: string): Promise<StoredVersion | undefined> {
  const { rows } = await db.query<StoredVersion>(`SELECT ${VERSION_COLUMNS} FROM room_keys_versions WHERE user_id = $1 ORDER BY version DESC LIMIT 1`, [userId]);
  return rows[0];
}

export async function getVersion(db: Queryable, userId: string, version: number): Promise<StoredVersion | undefined> {
  const { rows } = await db.query<StoredVersion>(`SELECT ${VERSION_COLUMNS} FROM room_keys_versions WHERE user_id = $1 AND version = $2`, [userId, version]);
  return rows[0];
}

/** Numbers and stores a new version, which becomes the current one. Needs lockOwner first. */
export async function createVersion(tx: Queryable, userId: string, algorithm: string, authData: Json): Promise<number> {
  const { rows } = await tx.query<{ last_version: number }>('UPDATE room_keys_owners SET last_version = last_version + 1 WHERE user_id = $1 RETURNING last_version', [userId]);
  const version = rows[0]!.last_version;
  await tx.query('INSERT INTO room_keys_versions (user_id, version, algorithm, auth_data, etag, key_count) VALUES ($1, $2, $3, $4, 0, 0)', [userId, version, algorithm, JSON.stringify(authData)]);
  return version;
}

export async function updateAuthData(tx: Queryable, userId: string, version: number, authData: Json): Promise<void> {
  await tx.query('UPDATE room_keys_versions SET auth_data = $3 WHERE user_id = $1 AND version = $2', [userId, version, JSON.stringify(authData)]);
}

/** Removes a version with all its keys; false when it was not there. */
export async function deleteVersion(tx: Queryable, userId: string, version: number): Promise<boolean> {
  await tx.query('DELETE FROM room_keys WHERE user_id = $1 AND version = $2', [userId, version]);
  const { rowCount } = await tx.query('DELETE FROM room_keys_versions WHERE user_id = $1 AND version = $2', [userId, version]);
  return rowCount > 0;
}

/** The stored keys of the given sessions, keyed by sessionKey. */
export async function storedKeysOf(tx: Queryable, userId: string, version: number, keys: UploadedKey[]): Promise<Map<string, StoredKey>> {
  const pairs = keys.map((k) => ({ room_id: k.roomId, session_id: k.sessionId }));
  const { rows } = await tx.query<StoredKey>(
    `SELECT ${KEY_COLUMNS} FROM room_keys
     WHERE user_id = $1 AND version = $2
       AND (room_id, session_id) IN (SELECT room_id, session_id FROM jsonb_to_recordset($3::jsonb) AS k(room_id text, session_id text))`,
    [userId, version, JSON.stringify(pairs)],
  );
  return new Map(rows.map((row) => [sessionKey(row.room_id, row.session_id), row]));
}

/** A map key for a (room, session) pair; JSON, as either id may contain any separator. */
export function sessionKey(roomId: string, sessionId: string): string {
  return JSON.stringify([roomId, sessionId]);
}

/** Inserts the keys, replacing the stored key of a session that has one. */
export async function writeKeys(tx: Queryable, userId: string, version: number, keys: UploadedKey[]): Promise<void> {
  const records = keys.map((k) => ({
    room_id: k.roomId,
    session_id: k.sessionId,
    first_message_index: k.first_message_index,
    forwarded_count: k.forwarded_count,
    is_verified: k.is_verified,
    session_data: k.session_data,
  }));
  await tx.query(
    `INSERT INTO room_keys (user_id, version, ${KEY_COLUMNS})
     SELECT $1, $2, ${KEY_COLUMNS}
       FROM jsonb_to_recordset($3::jsonb)
         AS k(room_id text, session_id text, first_message_index bigint, forwarded_count bigint, is_verified boolean, session_data jsonb)
     ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET
       first_message_index = EXCLUDED.first_message_index,
       forwarded_count = EXCLUDED.forwarded_count,
       is_verified = EXCLUDED.is_verified,
       session_data = EXCLUDED.session_data`,
    [userId, version, JSON.stringify(records)],
  );
}

/** Records a change of the version's keys: a new etag, and the count moved by `countDelta`. */
export async function recordKeysChanged(tx: Queryable, userId: string, version: number, countDelta: number): Promise<{ etag: number; key_count: number }> {
  const { rows } = await tx.query<{ etag: number; key_count: number }>(
    'UPDATE room_keys_versions SET etag = etag + 1, key_count = key_count + $3 WHERE user_id = $1 AND version = $2 RETURNING etag, key_count',
    [userId, version, countDelta],
  );
  return rows[0]!;
}

export interface KeyScope {
  roomId?: string;
  sessionId?: string;
}

function scopeFilter(scope: KeyScope): { sql: string; params: string[] } {
  if (scope.roomId === undefined) return { sql: '', params: [] };
  if (scope.sessionId === undefined) return { sql: ' AND room_id = $3', params: [scope.roomId] };
  return { sql: ' AND room_id = $3 AND session_id = $4', params: [scope.roomId, scope.sessionId] };
}

/** Deletes the keys in scope (all, a room's, one session's); returns how many. */
export async function deleteKeys(tx: Queryable, userId: string, version: number, scope: KeyScope): Promise<number> {
  const filter = scopeFilter(scope);
  const { rowCount } = await tx.query(`DELETE FROM room_keys WHERE user_id = $1 AND version = $2${filter.sql}`, [userId, version, ...filter.params]);
  return rowCount;
}

export async function readKeys(db: Queryable, userId: string, version: number, scope: KeyScope): Promise<StoredKey[]> {
  const filter = scopeFilter(scope);
  const { rows } = await db.query<StoredKey>(`SELECT ${KEY_COLUMNS} FROM room_keys WHERE user_id = $1 AND version = $2${filter.sql} ORDER BY room_id, session_id`, [userId, version, ...filter.params]);
  return rows;
}
