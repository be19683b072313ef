import { Inject, Injectable, Optional } from '@nestjs/common';
import { canonicalJson, crossSigningKeyAsSeenBy, decodeBase64, signablePart, verifyJsonSignature } from '@tessera/protocol';
import { getUserMemberships, type Db, type Queryable } from '@tessera/storage';
import type { Requester } from '../auth/access-tokens.service.js';
import { UserInteractiveAuthService } from '../auth/user-interactive-auth.service.js';
import { badJson, invalidParam, MatrixError } from '../errors.js';
import { DeviceListUpdates } from '../federation/device-list-updates.js';
import { keysFailure, RemoteQueries } from '../federation/remote-queries.js';
import { ROOM_MEMBERSHIP, type RoomMembership } from '../room-membership.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { recordDeviceListChange } from '../storage/accounts-store.js';
import { currentStreamPosition } from '../storage/streams.js';
import { StreamChanges } from '../stream-changes.js';
import { decodeSyncToken } from '../sync-token.js';
import { usersNoLongerSharing } from '../sync/device-lists-left.js';
import { CLIENT_API_DB } from '../tokens.js';
import { isPlainObject, isUserId, serverNameOf, type JsonBody } from '../validation.js';

type Json = Record<string, unknown>;

/** Spec: `timeout` of /keys/query and /keys/claim, in ms; 10 s by default. */
const DEFAULT_REMOTE_KEYS_TIMEOUT_MS = 10_000;

/** `timeout` is optional; when given it is an integer (M_BAD_JSON otherwise, before anything is done). */
function checkTimeout(body: JsonBody): void {
  const t = body.timeout;
  if (t !== undefined && t !== null && (typeof t !== 'number' || !Number.isSafeInteger(t))) throw badJson('"timeout" must be an integer (milliseconds)');
}

function timeoutOf(body: JsonBody): number {
  const t = body.timeout;
  return typeof t === 'number' && Number.isFinite(t) && t > 0 ? Math.min(t, 60_000) : DEFAULT_REMOTE_KEYS_TIMEOUT_MS;
}

/** The entry of `key` in `groups`, made empty on first use. */
function groupOf<V>(groups: Map<string, Record<string, V>>, key: string): Record<string, V> {
  let group = groups.get(key);
  if (!group) groups.set(key, (group = {}));
  return group;
}

/** Takes from a user/keys/claim answer the keys of the devices that were asked for, nothing else. */
function mergeClaimed(claimed: Record<string, Record<string, Json>>, asked: Record<string, Record<string, string>>, answer: unknown): void {
  const byUser = isPlainObject(answer) && isPlainObject(answer.one_time_keys) ? answer.one_time_keys : {};
  for (const [user, devices] of Object.entries(asked)) {
    const got = byUser[user];
    if (!isPlainObject(got)) continue;
    for (const deviceId of Object.keys(devices)) {
      const keys = got[deviceId];
      if (isPlainObject(keys) && Object.keys(keys).length > 0) (claimed[user] ??= {})[deviceId] = keys;
    }
  }
}
const CROSS_SIGNING_TYPES = { master_key: 'master', self_signing_key: 'self_signing', user_signing_key: 'user_signing' } as const;

export interface DeviceListChanges {
  /** The device_lists stream position these changes reach. */
  position: number;
  changed: string[];
  /** TODO(rooms): users no longer sharing a room need the rooms read model; empty until then. */
  left: string[];
}

/**
 * End-to-end encryption key storage (spec "End-to-End Encryption", "Key management API").
 * Signed objects are stored exactly as uploaded: the server never alters what devices sign.
 */
@Injectable()
export class KeysService {
  /** /sync's key counts per device, until its keys change (here or, relayed, on another replica). */
  private readonly syncCounts = new Map<string, Promise<{ oneTimeKeys: Record<string, number>; unusedFallbackTypes: string[] }>>();

  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(StreamChanges) private readonly changes: StreamChanges,
    @Inject(UserInteractiveAuthService) private readonly uia: UserInteractiveAuthService,
    @Inject(RemoteQueries) private readonly remote: RemoteQueries,
    @Inject(DeviceListUpdates) private readonly deviceLists: DeviceListUpdates,
    @Optional() @Inject(ROOM_MEMBERSHIP) private readonly membership?: RoomMembership,
  ) {
    changes.listenKeyCounts((c) => this.syncCounts.delete(`${c.userId}|${c.deviceId}`));
  }

  /**
   * device_one_time_keys_count and device_unused_fallback_key_types for /sync: read once,
   * then from memory until an upload or a claim changes them (StreamChanges.emitKeyCounts).
   */
  keyCountsForSync(userId: string, deviceId: string): Promise<{ oneTimeKeys: Record<string, number>; unusedFallbackTypes: string[] }> {
    const key = `${userId}|${deviceId}`;
    let counts = this.syncCounts.get(key);
    if (!counts) {
      counts = Promise.all([this.oneTimeKeyCounts(userId, deviceId), this.unusedFallbackKeyTypes(userId, deviceId)]).then(([oneTimeKeys, unusedFallbackTypes]) => ({
        oneTimeKeys,
        unusedFallbackTypes,
      }));
      counts.catch(() => this.syncCounts.delete(key));
      if (this.syncCounts.size >= 100_000) this.syncCounts.clear();
      this.syncCounts.set(key, counts);
    }
    return counts;
  }

  /** POST /keys/upload. */
  async upload(requester: Requester, body: JsonBody): Promise<{ one_time_key_counts: Record<string, number> }> {
    const { userId, deviceId } = requester;
    const deviceKeys = body.device_keys;
    if (deviceKeys !== undefined && deviceKeys !== null) {
      if (!isPlainObject(deviceKeys)) throw badJson('"device_keys" must be a JSON object');
      if (deviceKeys.user_id !== userId) throw invalidParam('device_keys.user_id must be your user id');
      if (deviceKeys.device_id !== deviceId) throw invalidParam('device_keys.device_id must be the device of this access token');
      if (!Array.isArray(deviceKeys.algorithms) || !isPlainObject(deviceKeys.keys) || !isPlainObject(deviceKeys.signatures)) {
        throw badJson('device_keys needs "algorithms" (list), "keys" and "signatures" (objects)');
      }
    }
    const oneTimeKeys = keyMap(body.one_time_keys, 'one_time_keys');
    const fallbackKeys = keyMap(body.fallback_keys ?? body['org.matrix.msc2732.fallback_keys'], 'fallback_keys');

    const changedAt = await this.db.transaction(async (tx) => {
      let position: number | undefined;
      if (isPlainObject(deviceKeys)) {
        const { rows } = await tx.query<{ keys: Json }>('SELECT keys FROM device_keys WHERE user_id = $1 AND device_id = $2', [userId, deviceId]);
        if (!rows[0] || JSON.stringify(rows[0].keys) !== JSON.stringify(deviceKeys)) {
          await tx.query(
            'INSERT INTO device_keys (user_id, device_id, keys) VALUES ($1, $2, $3) ON CONFLICT (user_id, device_id) DO UPDATE SET keys = $3',
            [userId, deviceId, JSON.stringify(deviceKeys)],
          );
          position = await recordDeviceListChange(tx, userId, deviceId);
        }
      }
      for (const [algorithm, keyId, key] of oneTimeKeys) {
        const { rows } = await tx.query<{ key_json: unknown }>(
          'SELECT key_json FROM one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 AND key_id = $4',
          [userId, deviceId, algorithm, keyId],
        );
        if (rows[0]) {
          if (JSON.stringify(rows[0].key_json) !== JSON.stringify(key)) throw invalidParam(`One-time key ${algorithm}:${keyId} already exists with other content`);
          continue;
        }
        await tx.query('INSERT INTO one_time_keys (user_id, device_id, algorithm, key_id, key_json) VALUES ($1, $2, $3, $4, $5)', [userId, deviceId, algorithm, keyId, JSON.stringify(key)]);
      }
      for (const [algorithm, keyId, key] of fallbackKeys) {
        // Re-uploading the same fallback key keeps its used flag; a new one starts unused.
        await tx.query(
          `INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, key_json, used) VALUES ($1, $2, $3, $4, $5, false)
           ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET key_id = $4, key_json = $5,
             used = CASE WHEN fallback_keys.key_id = $4 THEN fallback_keys.used ELSE false END`,
          [userId, deviceId, algorithm, keyId, JSON.stringify(key)],
        );
      }
      return position;
    });
    if (changedAt !== undefined) await this.deviceLists.changed(userId, [changedAt]);
    if (oneTimeKeys.length > 0 || fallbackKeys.length > 0) this.changes.emitKeyCounts({ userId, deviceId });
    return { one_time_key_counts: await this.oneTimeKeyCounts(userId, deviceId) };
  }

  /** Unclaimed one-time keys per algorithm (signed_curve25519 always present, as clients expect). */
  async oneTimeKeyCounts(userId: string, deviceId: string): Promise<Record<string, number>> {
    const { rows } = await this.db.query<{ algorithm: string; count: number }>(
      'SELECT algorithm, COUNT(*) AS count FROM one_time_keys WHERE user_id = $1 AND device_id = $2 GROUP BY algorithm',
      [userId, deviceId],
    );
    return { signed_curve25519: 0, ...Object.fromEntries(rows.map((r) => [r.algorithm, r.count])) };
  }

  /** For /sync's device_unused_fallback_key_types. */
  async unusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]> {
    const { rows } = await this.db.query<{ algorithm: string }>('SELECT algorithm FROM fallback_keys WHERE user_id = $1 AND device_id = $2 AND NOT used ORDER BY algorithm', [userId, deviceId]);
    return rows.map((r) => r.algorithm);
  }

  /** POST /keys/query. */
  async query(requester: Requester, body: JsonBody): Promise<Json> {
    const wanted = body.device_keys;
    if (wanted === undefined) throw new MatrixError(400, 'M_MISSING_PARAM', 'missing "device_keys"');
    if (!isPlainObject(wanted)) throw badJson('"device_keys" must be a JSON object');
    for (const [user, devices] of Object.entries(wanted)) {
      if (!Array.isArray(devices) || !devices.every((d) => typeof d === 'string')) throw badJson(`device_keys.${user} must be a list of device ids`);
    }
    checkTimeout(body);

    const result: { device_keys: Json; failures: Json; master_keys: Json; self_signing_keys: Json; user_signing_keys: Json } = {
      device_keys: {},
      failures: {},
      master_keys: {},
      self_signing_keys: {},
      user_signing_keys: {},
    };
    const remote = new Map<string, Record<string, string[]>>();
    for (const [user, devices] of Object.entries(wanted) as [string, string[]][]) {
      if (serverNameOf(user) !== this.settings.serverName) {
        if (isUserId(user)) groupOf(remote, serverNameOf(user))[user] = devices;
        continue;
      }
      const { rows } = await this.db.query<{ device_id: string; keys: Json; display_name: string | null }>(
        `SELECT k.device_id, k.keys, d.display_name FROM device_keys k
         JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id
         WHERE k.user_id = $1 AND ($2::text[] IS NULL OR k.device_id = ANY($2)) ORDER BY k.device_id`,
        [user, devices.length > 0 ? devices : null],
      );
      const userDevices: Json = {};
      for (const row of rows) {
        const unsigned = row.display_name !== null ? { device_display_name: row.display_name } : {};
        userDevices[row.device_id] = { ...row.keys, unsigned: { ...(isPlainObject(row.keys.unsigned) ? row.keys.unsigned : {}), ...unsigned } };
      }
      result.device_keys[user] = userDevices;
      const crossSigning = await this.crossSigningKeys(this.db, user);
      if (crossSigning.master) result.master_keys[user] = crossSigningKeyAsSeenBy(crossSigning.master, user, requester.userId);
      if (crossSigning.self_signing) result.self_signing_keys[user] = crossSigning.self_signing;
      // Spec: the user-signing key is only shown to its owner.
      if (crossSigning.user_signing && user === requester.userId) result.user_signing_keys[user] = crossSigning.user_signing;
    }
    await Promise.all([...remote].map(([server, users]) => this.queryRemote(server, users, timeoutOf(body), result)));
    return result;
  }

  /**
   * Asks one server for its users' keys (user/keys/query) and merges what it answers for the
   * users asked of it; an unreachable server is listed in `failures` (spec: POST /keys/query).
   * A user-signing key is never taken from another server (only its owner may see it).
   */
  private async queryRemote(server: string, users: Record<string, string[]>, timeoutMs: number, result: { device_keys: Json; failures: Json; master_keys: Json; self_signing_keys: Json }): Promise<void> {
    let answer: unknown;
    try {
      answer = await this.remote.keysQuery(server, users, timeoutMs);
    } catch (err) {
      result.failures[server] = keysFailure(err);
      return;
    }
    const answered = isPlainObject(answer) ? answer : {};
    const deviceKeys = isPlainObject(answered.device_keys) ? answered.device_keys : {};
    for (const [user, devices] of Object.entries(users)) {
      const got = deviceKeys[user];
      if (!isPlainObject(got)) continue;
      const wantedDevices = devices.length > 0 ? new Set(devices) : undefined;
      // Only devices that say they are this user's and this device (what clients then verify).
      const kept = Object.entries(got).filter(([deviceId, keys]) =>
        (!wantedDevices || wantedDevices.has(deviceId)) && isPlainObject(keys) && keys.user_id === user && keys.device_id === deviceId);
      result.device_keys[user] = Object.fromEntries(kept);
      for (const [field, target] of [['master_keys', result.master_keys], ['self_signing_keys', result.self_signing_keys]] as const) {
        const byUser = answered[field];
        const key = isPlainObject(byUser) ? byUser[user] : undefined;
        if (isPlainObject(key) && key.user_id === user) target[user] = key;
      }
    }
  }

  private async crossSigningKeys(db: Queryable, userId: string): Promise<Record<string, Json>> {
    const { rows } = await db.query<{ key_type: string; key_json: Json }>('SELECT key_type, key_json FROM cross_signing_keys WHERE user_id = $1', [userId]);
    return Object.fromEntries(rows.map((r) => [r.key_type, r.key_json]));
  }

  /** POST /keys/claim: one one-time key per device, else its fallback key; other servers' users through user/keys/claim. */
  async claim(body: JsonBody): Promise<Json> {
    const wanted = body.one_time_keys;
    if (wanted === undefined) throw new MatrixError(400, 'M_MISSING_PARAM', 'missing "one_time_keys"');
    if (!isPlainObject(wanted)) throw badJson('"one_time_keys" must be a JSON object');
    for (const [user, devices] of Object.entries(wanted)) {
      if (!isPlainObject(devices) || !Object.values(devices).every((a) => typeof a === 'string')) throw badJson(`one_time_keys.${user} must map device ids to algorithms`);
    }
    checkTimeout(body);
    const claimed: Record<string, Record<string, Json>> = {};
    const failures: Json = {};
    const remote = new Map<string, Record<string, Record<string, string>>>();
    for (const [user, devices] of Object.entries(wanted) as [string, Record<string, string>][]) {
      if (serverNameOf(user) !== this.settings.serverName) {
        if (isUserId(user)) groupOf(remote, serverNameOf(user))[user] = devices;
        continue;
      }
      for (const [deviceId, algorithm] of Object.entries(devices)) {
        const key = await this.claimOne(user, deviceId, algorithm);
        if (key) ((claimed[user] ??= {})[deviceId] = key);
      }
    }
    await Promise.all([...remote].map(async ([server, users]) => {
      try {
        mergeClaimed(claimed, users, await this.remote.keysClaim(server, users, timeoutOf(body)));
      } catch (err) {
        failures[server] = keysFailure(err);
      }
    }));
    return { one_time_keys: claimed, failures };
  }

  private async claimOne(userId: string, deviceId: string, algorithm: string): Promise<Json | undefined> {
    const claimed = await this.claimOneInDb(userId, deviceId, algorithm);
    if (claimed) this.changes.emitKeyCounts({ userId, deviceId });
    return claimed;
  }

  private async claimOneInDb(userId: string, deviceId: string, algorithm: string): Promise<Json | undefined> {
    return this.db.transaction(async (tx) => {
      // SKIP LOCKED: two claimers never get the same key and never wait for each other.
      const { rows } = await tx.query<{ key_id: string; key_json: unknown }>(
        `DELETE FROM one_time_keys WHERE (user_id, device_id, algorithm, key_id) IN (
           SELECT user_id, device_id, algorithm, key_id FROM one_time_keys
           WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING key_id, key_json`,
        [userId, deviceId, algorithm],
      );
      if (rows[0]) return { [`${algorithm}:${rows[0].key_id}`]: rows[0].key_json };
      const { rows: fallback } = await tx.query<{ key_id: string; key_json: unknown }>(
        'UPDATE fallback_keys SET used = true WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 RETURNING key_id, key_json',
        [userId, deviceId, algorithm],
      );
      return fallback[0] ? { [`${algorithm}:${fallback[0].key_id}`]: fallback[0].key_json } : undefined;
    });
  }

  /** GET /keys/changes?from=&to= (sync tokens). */
  async changesBetween(requester: Requester, from: unknown, to: unknown): Promise<{ changed: string[]; left: string[] }> {
    if (typeof from !== 'string' || from === '') throw new MatrixError(400, 'M_MISSING_PARAM', 'missing query parameter "from"');
    if (typeof to !== 'string' || to === '') throw new MatrixError(400, 'M_MISSING_PARAM', 'missing query parameter "to"');
    const fromPositions = decodeSyncToken(from);
    const toPositions = decodeSyncToken(to);
    if (!fromPositions) throw invalidParam('"from" is not a sync token');
    if (!toPositions) throw invalidParam('"to" is not a sync token');
    const { changed } = await this.changesInRange(requester.userId, fromPositions.device_lists, toPositions.device_lists);
    // `left` needs the event log's memberships (absent when client-api runs without the rooms read model).
    if (!this.membership?.usersSharingRoomsWith) return { changed, left: [] };
    const memberships = await getUserMemberships(this.db, requester.userId);
    const joined = memberships.filter((m) => m.membership === 'join').map((m) => m.roomId);
    const sharing = await usersNoLongerSharing(this.db, undefined, requester.userId, memberships, joined, fromPositions.events, toPositions.events);
    return { changed: [...new Set([...changed, ...sharing.joined])].sort(), left: sharing.left };
  }

  /** For /sync: device list changes the user should hear of, after `since`. */
  async getDeviceListChangesSince(userId: string, since: number): Promise<DeviceListChanges> {
    const position = await currentStreamPosition(this.db, 'device_lists');
    return { position, ...(await this.changesInRange(userId, since, position)) };
  }

  private async changesInRange(userId: string, from: number, to: number): Promise<{ changed: string[]; left: string[] }> {
    const { rows } = await this.db.query<{ user_id: string }>(
      'SELECT DISTINCT user_id FROM device_list_changes WHERE stream_position > $1 AND stream_position <= $2 ORDER BY user_id',
      [from, to],
    );
    let changed = rows.map((r) => r.user_id);
    if (this.membership?.usersSharingRoomsWith) {
      const sharing = new Set([userId, ...(await this.membership.usersSharingRoomsWith(userId))]);
      changed = changed.filter((u) => sharing.has(u));
    }
    // TODO(rooms): without the rooms read model every changed local user is reported, which is
    // more than needed but safe (clients re-query keys); `left` needs membership history.
    return { changed, left: [] };
  }

  /** POST /keys/device_signing/upload. First upload needs no UIA (MSC3967, as Synapse); replacing keys does. */
  async uploadCrossSigningKeys(requester: Requester, body: JsonBody): Promise<void> {
    const uploads: [string, Json][] = [];
    for (const [field, keyType] of Object.entries(CROSS_SIGNING_TYPES)) {
      const key = body[field];
      if (key === undefined || key === null) continue;
      if (!isPlainObject(key) || key.user_id !== requester.userId || !Array.isArray(key.usage) || !isPlainObject(key.keys)) {
        throw invalidParam(`"${field}" must be a cross-signing key of yours with "usage" and "keys"`);
      }
      uploads.push([keyType, key]);
    }
    const existing = await this.crossSigningKeys(this.db, requester.userId);
    const replaces = uploads.some(([type, key]) => existing[type] && JSON.stringify(existing[type]) !== JSON.stringify(key));
    if (existing.master && replaces) await this.uia.require(body, 'device_signing', requester.userId);
    if (uploads.length === 0) return;
    const position = await this.db.transaction(async (tx) => {
      for (const [keyType, key] of uploads) {
        await tx.query(
          'INSERT INTO cross_signing_keys (user_id, key_type, key_json) VALUES ($1, $2, $3) ON CONFLICT (user_id, key_type) DO UPDATE SET key_json = $3',
          [requester.userId, keyType, JSON.stringify(key)],
        );
      }
      // No device: other servers hear of cross-signing keys as m.signing_key_update.
      return recordDeviceListChange(tx, requester.userId, null);
    });
    await this.deviceLists.changed(requester.userId, [position]);
  }

  /**
   * POST /keys/signatures/upload (spec "Cross-signing"): signatures the user made of keys.
   * Each signed object must be the stored key (its signable part unchanged) and each of the
   * user's new signatures on it (those not stored already) must verify (Ed25519 over the
   * canonical JSON without signatures and unsigned) with the key that may sign it: the user's
   * own devices with their self-signing key, their master key with one of their devices,
   * another user's master key with their user-signing key. A key that fails is reported in
   * `failures` and nothing of it is stored; the others are stored (as Synapse).
   */
  async uploadSignatures(requester: Requester, body: JsonBody): Promise<{ failures: Json }> {
    const failures: Record<string, Json> = {};
    for (const [userId, keys] of Object.entries(body)) {
      if (!isPlainObject(keys)) throw badJson(`"${userId}" must map key ids to signed keys`);
      for (const [keyId, signed] of Object.entries(keys)) {
        if (!isPlainObject(signed) || !isPlainObject(signed.signatures)) throw badJson(`${userId}/${keyId} must be a signed key object`);
        const failure = await this.addSignatures(requester, userId, keyId, signed);
        if (failure) (failures[userId] ??= {})[keyId] = failure;
      }
    }
    return { failures };
  }

  /** Checks and stores one signed key; the failure to report, if any. */
  private async addSignatures(requester: Requester, userId: string, keyId: string, signed: Json): Promise<{ errcode: string; error: string } | undefined> {
    const signer = requester.userId;
    const ownSignatures = (signed.signatures as Record<string, unknown>)[signer];
    if (!isPlainObject(ownSignatures) || Object.keys(ownSignatures).length === 0) {
      return { errcode: 'M_INVALID_SIGNATURE', error: `No signature by ${signer} on ${userId}/${keyId}` };
    }
    const signerCross = await this.crossSigningKeys(this.db, signer);
    type Outcome = { errcode: string; error: string } | { position: number };
    const outcome = await this.db.transaction(async (tx): Promise<Outcome> => {
      const { rows } = await tx.query<{ keys: Json }>('SELECT keys FROM device_keys WHERE user_id = $1 AND device_id = $2 FOR UPDATE', [userId, keyId]);
      let stored: Json | undefined = rows[0]?.keys;
      let crossType: string | undefined;
      if (!stored) {
        const { rows: cross } = await tx.query<{ key_type: string; key_json: Json }>('SELECT key_type, key_json FROM cross_signing_keys WHERE user_id = $1 FOR UPDATE', [userId]);
        const target = cross.find((row) => isPlainObject(row.key_json.keys) && Object.values(row.key_json.keys).includes(keyId));
        if (!target) return { errcode: 'M_NOT_FOUND', error: `${userId} has no device or cross-signing key ${keyId}` };
        stored = target.key_json;
        crossType = target.key_type;
      }
      if (!sameSignable(stored, signed)) return { errcode: 'M_INVALID_PARAM', error: `The signed object is not the stored key ${userId}/${keyId}` };
      // The public key each of the signer's key ids may sign this key with.
      let allowed: (signingKeyId: string) => Promise<string | undefined>;
      if (userId === signer && crossType === undefined) {
        allowed = async (id) => crossSigningPublicKey(signerCross.self_signing, id);
      } else if (userId === signer && crossType === 'master') {
        allowed = async (id) => {
          if (!id.startsWith('ed25519:')) return undefined;
          const { rows: device } = await tx.query<{ keys: Json }>('SELECT keys FROM device_keys WHERE user_id = $1 AND device_id = $2', [signer, id.slice('ed25519:'.length)]);
          const key = isPlainObject(device[0]?.keys.keys) ? (device[0]!.keys.keys as Json)[id] : undefined;
          return typeof key === 'string' ? key : undefined;
        };
      } else if (userId !== signer && crossType === 'master') {
        allowed = async (id) => crossSigningPublicKey(signerCross.user_signing, id);
      } else {
        return { errcode: 'M_INVALID_PARAM', error: `${signer} cannot sign ${userId}/${keyId}: only their own devices and master key, and other users' master keys` };
      }
      // Signatures already stored as they are (the device's own, say) come back with the object: only new ones are checked.
      const current = isPlainObject(stored.signatures) ? (stored.signatures as Record<string, Json>) : {};
      const fresh = Object.entries(ownSignatures).filter(([id, signature]) => current[signer]?.[id] !== signature);
      for (const [signingKeyId, signature] of fresh) {
        const publicKey = await allowed(signingKeyId);
        if (publicKey === undefined || typeof signature !== 'string') {
          return { errcode: 'M_INVALID_SIGNATURE', error: `${signingKeyId} of ${signer} may not sign ${userId}/${keyId}` };
        }
        let publicKeyBytes: Buffer;
        try {
          publicKeyBytes = decodeBase64(publicKey);
        } catch {
          return { errcode: 'M_INVALID_SIGNATURE', error: `The public key of ${signingKeyId} is not base64` };
        }
        if (!verifyJsonSignature(signed, signer, signingKeyId, publicKeyBytes)) {
          return { errcode: 'M_INVALID_SIGNATURE', error: `Invalid signature ${signingKeyId} of ${signer} on ${userId}/${keyId}` };
        }
      }
      if (fresh.length === 0) return { position: 0 }; // nothing new: nothing to store or announce
      const merged = { ...stored, signatures: { ...current, [signer]: { ...(current[signer] ?? {}), ...Object.fromEntries(fresh) } } };
      if (crossType === undefined) {
        await tx.query('UPDATE device_keys SET keys = $3 WHERE user_id = $1 AND device_id = $2', [userId, keyId, JSON.stringify(merged)]);
      } else {
        await tx.query('UPDATE cross_signing_keys SET key_json = $3 WHERE user_id = $1 AND key_type = $2', [userId, crossType, JSON.stringify(merged)]);
      }
      return { position: await recordDeviceListChange(tx, userId, crossType === undefined ? keyId : null) };
    });
    if ('errcode' in outcome) return outcome;
    if (outcome.position > 0) await this.deviceLists.changed(userId, [outcome.position]);
    return undefined;
  }
}

/** Whether two key objects are the same but for signatures and unsigned. */
function sameSignable(a: Json, b: Json): boolean {
  try {
    return canonicalJson(signablePart(a)) === canonicalJson(signablePart(b));
  } catch {
    return false;
  }
}

/** The public key of a cross-signing key under this key id (`ed25519:<public key>`), if it has it. */
function crossSigningPublicKey(key: Json | undefined, keyId: string): string | undefined {
  const keys = key?.keys;
  if (!isPlainObject(keys)) return undefined;
  const value = keys[keyId];
  return typeof value === 'string' ? value : undefined;
}

/** `{"<algorithm>:<key id>": key}` as [algorithm, key id, key] triples. */
function keyMap(value: unknown, field: string): [string, string, unknown][] {
  if (value === undefined || value === null) return [];
  if (!isPlainObject(value)) throw badJson(`"${field}" must be a JSON object`);
  return Object.entries(value).map(([name, key]) => {
    const colon = name.indexOf(':');
    if (colon <= 0 || colon === name.length - 1) throw badJson(`${field} key "${name}" must be "<algorithm>:<key id>"`);
    if (typeof key !== 'string' && !isPlainObject(key)) throw badJson(`${field}.${name} must be a string or a signed key object`);
    return [name.slice(0, colon), name.slice(colon + 1), key];
  });
}
