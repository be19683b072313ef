/**
 * Reads of client-api's tables that federation answers need (profiles, devices, E2EE keys,
 * aliases, the public room directory). client-api owns and writes these tables; this is a
 * read repository over them (plus the one-time key claim, which must consume the key
 * atomically). A deployment whose database lacks them (no client-api yet) answers empty.
 */
import { crossSigningKeyAsSeenBy } from '@tessera/protocol';
import type { Queryable } from '@tessera/storage';

const UNDEFINED_TABLE = '42P01';

async function orEmpty<T>(fn: () => Promise<T>, empty: T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if ((err as { code?: string }).code === UNDEFINED_TABLE || /does not exist/.test((err as Error).message)) return empty;
    throw err;
  }
}

export async function getProfile(db: Queryable, userId: string): Promise<Record<string, unknown> | null> {
  return orEmpty(async () => {
    const { rows } = await db.query<{ profile: Record<string, unknown>; deactivated: boolean }>('SELECT profile, deactivated FROM accounts WHERE user_id = $1', [userId]);
    return rows[0] ? (rows[0].deactivated ? {} : rows[0].profile ?? {}) : null;
  }, null);
}

export async function userExists(db: Queryable, userId: string): Promise<boolean> {
  return (await getProfile(db, userId)) !== null;
}

export interface DeviceRow {
  deviceId: string;
  displayName: string | null;
  keys: Record<string, unknown> | null;
}

export async function getDevicesWithKeys(db: Queryable, userId: string): Promise<DeviceRow[]> {
  return orEmpty(async () => {
    const { rows } = await db.query<{ device_id: string; display_name: string | null; keys: Record<string, unknown> | null }>(
      `SELECT d.device_id, d.display_name, k.keys FROM devices d LEFT JOIN device_keys k ON k.user_id = d.user_id AND k.device_id = d.device_id
       WHERE d.user_id = $1 ORDER BY d.device_id`,
      [userId],
    );
    return rows.map((r) => ({ deviceId: r.device_id, displayName: r.display_name, keys: r.keys }));
  }, []);
}

export async function getCrossSigningKeys(db: Queryable, userId: string): Promise<Record<string, Record<string, unknown>>> {
  return orEmpty(async () => {
    const { rows } = await db.query<{ key_type: string; key_json: Record<string, unknown> }>('SELECT key_type, key_json FROM cross_signing_keys WHERE user_id = $1', [userId]);
    // Other servers see no user's signatures of this user's keys but the owner's (see crossSigningKeyAsSeenBy).
    return Object.fromEntries(rows.map((r) => [r.key_type, crossSigningKeyAsSeenBy(r.key_json, userId)]));
  }, {});
}

/**
 * The stream_id of a local user's device list for GET /user/devices: the last m.device_list_update
 * client-api sent for them, which is the position of their last change that names a device
 * (client-api federation/device-list-updates.ts). A receiver takes it as the prev_id the next
 * update must name; changes naming no device (cross-signing keys) are not in that chain.
 */
export async function getDeviceListStreamId(db: Queryable, userId: string): Promise<number> {
  return orEmpty(async () => {
    const { rows } = await db.query<{ pos: number | null }>(
      'SELECT MAX(stream_position) AS pos FROM device_list_changes WHERE user_id = $1 AND device_id IS NOT NULL',
      [userId],
    );
    return rows[0]?.pos ?? 0;
  }, 0);
}

/** Claims one one-time key of the algorithm (deleted as it is handed out), else the fallback key. */
export async function claimOneTimeKey(db: Queryable, userId: string, deviceId: string, algorithm: string): Promise<Record<string, unknown> | null> {
  return orEmpty(async () => {
    const { rows } = await db.query<{ key_id: string; key_json: Record<string, unknown> }>(
      `DELETE FROM one_time_keys WHERE ctid = (
         SELECT ctid FROM one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED
       ) RETURNING key_id, key_json`,
      [userId, deviceId, algorithm],
    );
    if (rows[0]) return { [`${algorithm}:${rows[0].key_id}`]: rows[0].key_json };
    const fb = await db.query<{ key_id: string; key_json: Record<string, unknown> }>(
      `UPDATE fallback_keys SET used = true WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 RETURNING key_id, key_json`,
      [userId, deviceId, algorithm],
    );
    return fb.rows[0] ? { [`${algorithm}:${fb.rows[0].key_id}`]: fb.rows[0].key_json } : null;
  }, null);
}

export async function getAliasRoom(db: Queryable, alias: string): Promise<string | null> {
  return orEmpty(async () => {
    const { rows } = await db.query<{ room_id: string }>('SELECT room_id FROM room_aliases WHERE alias = $1', [alias]);
    return rows[0]?.room_id ?? null;
  }, null);
}

export async function getPublishedRoomIds(db: Queryable): Promise<string[]> {
  return orEmpty(async () => {
    const { rows } = await db.query<{ room_id: string }>('SELECT room_id FROM room_directory ORDER BY published_ts, room_id');
    return rows.map((r) => r.room_id);
  }, []);
}

/**
 * The user an unexpired OpenID token (client-api's POST /openid/request_token) was issued to;
 * tokens are stored by their SHA-256, as client-api writes them.
 */
export async function getOpenIdTokenUser(db: Queryable, tokenHash: string, now: number): Promise<string | null> {
  return orEmpty(async () => {
    const { rows } = await db.query<{ user_id: string }>('SELECT user_id FROM openid_tokens WHERE token_hash = $1 AND expires_ts > $2', [tokenHash, now]);
    return rows[0]?.user_id ?? null;
  }, null);
}
