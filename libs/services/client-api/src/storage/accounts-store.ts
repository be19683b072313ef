import type { Queryable } from '@tessera/storage';
import { nextStreamPosition } from './streams.js';

export interface AccountRow {
  user_id: string;
  password_hash: string | null;
  is_admin: boolean;
  user_type: string | null;
  created_ts: number;
  deactivated: boolean;
  profile: Record<string, unknown>;
}

export interface DeviceRow {
  user_id: string;
  device_id: string;
  display_name: string | null;
  created_ts: number;
  last_seen_ts: number | null;
  last_seen_ip: string | null;
}

/** Accounts and devices: plain SQL over the Db interface, usable inside or outside a transaction. */
export const accountsStore = {
  async get(db: Queryable, userId: string): Promise<AccountRow | undefined> {
    const { rows } = await db.query<AccountRow>('SELECT * FROM accounts WHERE user_id = $1', [userId]);
    return rows[0];
  },

  /** Inserts the account; false when the user id is taken. */
  async insert(db: Queryable, account: { userId: string; passwordHash: string | null; isAdmin?: boolean; userType?: string; profile?: Record<string, unknown> }): Promise<boolean> {
    const { rowCount } = await db.query(
      `INSERT INTO accounts (user_id, password_hash, is_admin, user_type, created_ts, profile)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id) DO NOTHING`,
      [account.userId, account.passwordHash, account.isAdmin ?? false, account.userType ?? null, Date.now(), JSON.stringify(account.profile ?? {})],
    );
    return rowCount === 1;
  },

  async setPasswordHash(db: Queryable, userId: string, hash: string): Promise<void> {
    await db.query('UPDATE accounts SET password_hash = $2 WHERE user_id = $1', [userId, hash]);
  },

  async setProfileField(db: Queryable, userId: string, key: string, value: unknown): Promise<void> {
    await db.query('UPDATE accounts SET profile = jsonb_set(profile, ARRAY[$2::text], $3::jsonb) WHERE user_id = $1', [userId, key, JSON.stringify(value)]);
  },

  async deleteProfileField(db: Queryable, userId: string, key: string): Promise<void> {
    await db.query('UPDATE accounts SET profile = profile - $2::text WHERE user_id = $1', [userId, key]);
  },

  async getDevice(db: Queryable, userId: string, deviceId: string): Promise<DeviceRow | undefined> {
    const { rows } = await db.query<DeviceRow>('SELECT * FROM devices WHERE user_id = $1 AND device_id = $2', [userId, deviceId]);
    return rows[0];
  },

  async listDevices(db: Queryable, userId: string): Promise<DeviceRow[]> {
    const { rows } = await db.query<DeviceRow>('SELECT * FROM devices WHERE user_id = $1 ORDER BY created_ts, device_id', [userId]);
    return rows;
  },

  /** Creates the device when new; an existing device keeps its name unless one is given. */
  async upsertDevice(db: Queryable, userId: string, deviceId: string, displayName: string | undefined, ip?: string): Promise<void> {
    const now = Date.now();
    await db.query(
      `INSERT INTO devices (user_id, device_id, display_name, created_ts, last_seen_ts, last_seen_ip)
       VALUES ($1, $2, $3, $4, $4, $5)
       ON CONFLICT (user_id, device_id) DO UPDATE SET display_name = COALESCE($3, devices.display_name)`,
      [userId, deviceId, displayName ?? null, now, ip ?? null],
    );
  },

  async renameDevice(db: Queryable, userId: string, deviceId: string, displayName: string | null): Promise<boolean> {
    const { rowCount } = await db.query('UPDATE devices SET display_name = $3 WHERE user_id = $1 AND device_id = $2', [userId, deviceId, displayName]);
    return rowCount === 1;
  },

  async touchDevice(db: Queryable, userId: string, deviceId: string, ip: string | undefined): Promise<void> {
    await db.query('UPDATE devices SET last_seen_ts = $3, last_seen_ip = COALESCE($4, last_seen_ip) WHERE user_id = $1 AND device_id = $2', [userId, deviceId, Date.now(), ip ?? null]);
  },

  /**
   * Removes devices and everything that hangs off them: keys, one-time and fallback keys,
   * pending to-device messages, transaction ids, pushers (as Synapse). Returns the token keys the devices held (the
   * caller revokes JWTs among them). Records a device list change when any device went.
   */
  async deleteDevices(tx: Queryable, userId: string, deviceIds: string[]): Promise<{ deleted: string[]; tokenKeys: string[] }> {
    if (deviceIds.length === 0) return { deleted: [], tokenKeys: [] };
    const { rows } = await tx.query<{ device_id: string }>('DELETE FROM devices WHERE user_id = $1 AND device_id = ANY($2) RETURNING device_id', [userId, deviceIds]);
    const { rows: tokens } = await tx.query<{ token_hash: string }>('DELETE FROM access_tokens WHERE user_id = $1 AND device_id = ANY($2) RETURNING token_hash', [userId, deviceIds]);
    for (const table of ['device_keys', 'one_time_keys', 'fallback_keys', 'to_device_inbox', 'to_device_txns', 'pushers']) {
      await tx.query(`DELETE FROM ${table} WHERE user_id = $1 AND device_id = ANY($2)`, [userId, deviceIds]);
    }
    if (rows.length > 0) await recordDeviceListChange(tx, userId);
    return { deleted: rows.map((r) => r.device_id), tokenKeys: tokens.map((t) => t.token_hash) };
  },
};

/** A user's device list changed (device added with keys, renamed, removed; cross-signing keys). */
export async function recordDeviceListChange(tx: Queryable, userId: string): Promise<number> {
  const position = await nextStreamPosition(tx, 'device_lists');
  await tx.query('INSERT INTO device_list_changes (stream_position, user_id) VALUES ($1, $2)', [position, userId]);
  return position;
}
