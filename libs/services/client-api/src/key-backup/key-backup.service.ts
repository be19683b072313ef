import { Inject, Injectable } from '@nestjs/common';
import type { Db } from '@tessera/storage';
import { invalidParam, MatrixError, notFound } from '../errors.js';
import { CLIENT_API_DB } from '../tokens.js';
import type { JsonBody } from '../validation.js';
import { parseBackupVersionBody, replacesStoredKey, versionNumber, type KeyBackupData, type UploadedKey } from './key-backup-body.js';
import {
  createVersion,
  currentVersion,
  deleteKeys,
  deleteVersion,
  getVersion,
  lockOwner,
  readKeys,
  recordKeysChanged,
  sessionKey,
  storedKeysOf,
  updateAuthData,
  writeKeys,
  type KeyScope,
  type StoredKey,
  type StoredVersion,
} from './key-backup.store.js';

export interface BackupVersionInfo {
  algorithm: string;
  auth_data: JsonBody;
  count: number;
  etag: string;
  version: string;
}

/** The spec's RoomKeysUpdateResponse: the backup's keys after a store or a delete. */
export interface RoomKeysUpdate {
  etag: string;
  count: number;
}

function describe(stored: StoredVersion): BackupVersionInfo {
  return { algorithm: stored.algorithm, auth_data: stored.auth_data, count: stored.key_count, etag: String(stored.etag), version: String(stored.version) };
}

function keyData(row: StoredKey): KeyBackupData {
  return { first_message_index: row.first_message_index, forwarded_count: row.forwarded_count, is_verified: row.is_verified, session_data: row.session_data };
}

const unknownVersion = (version: string) => notFound(`Unknown backup version "${version}"`);

/**
 * Server-side key backups (spec: End-to-End Encryption, "Server-side key backups"). Backups are
 * per user, numbered 1, 2, ... (as Synapse numbers them); the latest one not deleted is the
 * current one, the only one keys may be stored in. The server never reads what it stores: the
 * key data is encrypted by the clients, only its metadata decides which key is kept.
 *
 * The etag of a version changes exactly when its keys change (a stored, replaced or deleted
 * key); Synapse also changes it on a delete that removed nothing, which would tell clients
 * another device modified the backup when none did.
 */
@Injectable()
export class KeyBackupService {
  constructor(@Inject(CLIENT_API_DB) private readonly db: Db) {}

  /** POST /room_keys/version. */
  async createVersion(userId: string, body: JsonBody): Promise<{ version: string }> {
    const { algorithm, authData } = parseBackupVersionBody(body);
    const version = await this.db.transaction(async (tx) => {
      await lockOwner(tx, userId);
      return createVersion(tx, userId, algorithm, authData);
    });
    return { version: String(version) };
  }

  /** GET /room_keys/version: 404 M_NOT_FOUND when there is none (clients read it as "no backup"). */
  async currentVersionInfo(userId: string): Promise<BackupVersionInfo> {
    const stored = await currentVersion(this.db, userId);
    if (!stored) throw notFound('No current backup version');
    return describe(stored);
  }

  /** GET /room_keys/version/{version}. */
  async versionInfo(userId: string, version: string): Promise<BackupVersionInfo> {
    const number = versionNumber(version);
    const stored = number === undefined ? undefined : await getVersion(this.db, userId, number);
    if (!stored) throw unknownVersion(version);
    return describe(stored);
  }

  /** PUT /room_keys/version/{version}: only auth_data changes; the algorithm must be the version's. */
  async updateVersion(userId: string, version: string, body: JsonBody): Promise<Record<string, never>> {
    const { algorithm, authData, version: bodyVersion } = parseBackupVersionBody(body);
    if (bodyVersion !== undefined && bodyVersion !== version) throw invalidParam(`the "version" of the body (${bodyVersion}) is not the version of the path (${version})`);
    const number = versionNumber(version);
    await this.db.transaction(async (tx) => {
      await lockOwner(tx, userId);
      const stored = number === undefined ? undefined : await getVersion(tx, userId, number);
      if (!stored) throw unknownVersion(version);
      if (stored.algorithm !== algorithm) throw invalidParam(`the algorithm of backup version ${version} is "${stored.algorithm}" and cannot be changed`);
      await updateAuthData(tx, userId, stored.version, authData);
    });
    return {};
  }

  /**
   * DELETE /room_keys/version/{version}: the version and all its keys. A version deleted
   * before answers 200 as the spec asks; one never created answers 404.
   */
  async deleteVersion(userId: string, version: string): Promise<Record<string, never>> {
    const number = versionNumber(version);
    if (number === undefined) throw unknownVersion(version);
    await this.db.transaction(async (tx) => {
      const lastVersion = await lockOwner(tx, userId);
      const deleted = await deleteVersion(tx, userId, number);
      if (!deleted && number > lastVersion) throw unknownVersion(version);
    });
    return {};
  }

  /**
   * PUT /room_keys/keys[/{roomId}[/{sessionId}]]: keys go into the current version only (403
   * M_WRONG_ROOM_KEYS_VERSION with current_version for an older one, 404 for one that does not
   * exist). A session's stored key is replaced only by a better one (replacesStoredKey).
   */
  async storeKeys(userId: string, version: string, keys: UploadedKey[]): Promise<RoomKeysUpdate> {
    const number = versionNumber(version);
    return this.db.transaction(async (tx) => {
      await lockOwner(tx, userId);
      const current = await currentVersion(tx, userId);
      if (!current || number === undefined) throw unknownVersion(version);
      if (current.version !== number) {
        if (!(await getVersion(tx, userId, number))) throw unknownVersion(version);
        throw new MatrixError(403, 'M_WRONG_ROOM_KEYS_VERSION', `backup version ${version} is not the current backup version (${current.version})`, {
          current_version: String(current.version),
        });
      }
      const stored = keys.length === 0 ? new Map<string, StoredKey>() : await storedKeysOf(tx, userId, number, keys);
      const toWrite = keys.filter((key) => {
        const old = stored.get(sessionKey(key.roomId, key.sessionId));
        return old === undefined || replacesStoredKey(key, old);
      });
      if (toWrite.length === 0) return { etag: String(current.etag), count: current.key_count };
      await writeKeys(tx, userId, number, toWrite);
      const added = toWrite.filter((key) => !stored.has(sessionKey(key.roomId, key.sessionId))).length;
      const after = await recordKeysChanged(tx, userId, number, added);
      return { etag: String(after.etag), count: after.key_count };
    });
  }

  /** DELETE /room_keys/keys[/{roomId}[/{sessionId}]], from any existing version. */
  async deleteKeys(userId: string, version: string, scope: KeyScope): Promise<RoomKeysUpdate> {
    const number = versionNumber(version);
    return this.db.transaction(async (tx) => {
      await lockOwner(tx, userId);
      const stored = number === undefined ? undefined : await getVersion(tx, userId, number);
      if (!stored) throw unknownVersion(version);
      const deleted = await deleteKeys(tx, userId, stored.version, scope);
      if (deleted === 0) return { etag: String(stored.etag), count: stored.key_count };
      const after = await recordKeysChanged(tx, userId, stored.version, -deleted);
      return { etag: String(after.etag), count: after.key_count };
    });
  }

  /** GET /room_keys/keys: `{rooms: {...}}`, `{}` rooms when the backup is empty. */
  async allKeys(userId: string, version: string): Promise<{ rooms: Record<string, { sessions: Record<string, KeyBackupData> }> }> {
    const rooms: Record<string, { sessions: Record<string, KeyBackupData> }> = {};
    for (const row of await this.readKeys(userId, version, {})) (rooms[row.room_id] ??= { sessions: {} }).sessions[row.session_id] = keyData(row);
    return { rooms };
  }

  /** GET /room_keys/keys/{roomId}: `{sessions: {...}}`, empty when the room has none. */
  async roomKeys(userId: string, version: string, roomId: string): Promise<{ sessions: Record<string, KeyBackupData> }> {
    const sessions: Record<string, KeyBackupData> = {};
    for (const row of await this.readKeys(userId, version, { roomId })) sessions[row.session_id] = keyData(row);
    return { sessions };
  }

  /** GET /room_keys/keys/{roomId}/{sessionId}: 404 M_NOT_FOUND when the backup has no key for it. */
  async sessionKey(userId: string, version: string, roomId: string, sessionId: string): Promise<KeyBackupData> {
    const [row] = await this.readKeys(userId, version, { roomId, sessionId });
    if (!row) throw notFound(`backup version ${version} has no key for session ${sessionId} in room ${roomId}`);
    return keyData(row);
  }

  private async readKeys(userId: string, version: string, scope: KeyScope): Promise<StoredKey[]> {
    const number = versionNumber(version);
    const stored = number === undefined ? undefined : await getVersion(this.db, userId, number);
    if (!stored) throw unknownVersion(version);
    return readKeys(this.db, userId, stored.version, scope);
  }
}
