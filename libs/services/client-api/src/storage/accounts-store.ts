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
  /** Deactivated with erase: its profile was deleted (Synapse's admin API reports it). */
  erased: boolean;
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

  /** Creates the device when new; an existing device keeps its name unless one is given. True when the device is new. */
  async upsertDevice(db: Queryable, userId: string, deviceId: string, displayName: string | undefined, ip?: string): Promise<boolean> {
    const now = Date.now();
    // xmax is 0 on a row this statement inserted, set on one it updated (PostgreSQL's usual test for it).
    const { rows } = await db.query<{ inserted: boolean }>(
      `INSERT INTO devices (user_id, device_id, display_name, created_ts, last_seen_ts, last_seen_ip)
       VALUES ($1, $2, $3, $4, $4, $5)
       ON CONFLICT (user_id, device_id) DO UPDATE SET display_name = COALESCE($3, devices.display_name)
       RETURNING (xmax = 0) AS inserted`,
      [userId, deviceId, displayName ?? null, now, ip ?? null],
    );
    return rows[0]?.inserted === true;
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
   * caller revokes JWTs among them). Records a device list change per device that went (each
   * is its own m.device_list_update for other servers).
   */
  async deleteDevices(tx: Queryable, userId: string, deviceIds: string[]): Promise<{ deleted: string[]; tokenKeys: string[]; positions: number[] }> {
    if (deviceIds.length === 0) return { deleted: [], tokenKeys: [], positions: [] };
    const { rows } = await tx.query<{ device_id: string }>('DELETE FROM devices WHERE user_id = $1 AND device_id = ANY($2) RETURNING device_id', [userId, deviceIds]);
    const { rows: tokens } = await tx.query<{ token_hash: string }>('DELETE FROM access_tokens WHERE user_id = $1 AND device_id = ANY($2) RETURNING token_hash', [userId, deviceIds]);
    for (const table of ['device_keys', 'one_time_keys', 'fallback_keys', 'to_device_inbox', 'to_device_txns', 'pushers']) {
      await tx.query(`DELETE FROM ${table} WHERE user_id = $1 AND device_id = ANY($2)`, [userId, deviceIds]);
    }
    const positions: number[] = [];
    for (const row of rows) positions.push(await recordDeviceListChange(tx, userId, row.device_id));
    return { deleted: rows.map((r) => r.device_id), tokenKeys: tokens.map((t) => t.token_hash), positions };
  },
};

/**
 * A user's device list changed (device added, its keys or name changed, removed: `deviceId`;
 * cross-signing keys, or another server's user: null). Returns the change's device_lists
 * position; for a local user's device it is also that device's m.device_list_update stream_id.
 */
export async function recordDeviceListChange(tx: Queryable, userId: string, deviceId: string | null): Promise<number> {
  const position = await nextStreamPosition(tx, 'device_lists');
  await tx.query('INSERT INTO device_list_changes (stream_position, user_id, device_id) VALUES ($1, $2, $3)', [position, userId, deviceId]);
  return position;
}
