import { Inject, Injectable } from '@nestjs/common';
import type { Db } from '@tessera/storage';
import { forbidden, invalidParam } from '../errors.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { CLIENT_API_DB } from '../tokens.js';
import { serverNameOf } from '../validation.js';

interface ConnectionInfo {
  ip?: string;
  last_seen?: number;
}

export interface WhoIs {
  user_id: string;
  devices: Record<string, { sessions: Array<{ connections: ConnectionInfo[] }> }>;
}

/**
 * GET /admin/whois/{userId}: a user's devices and where they were last seen. What is tracked
 * per device is its last IP and last activity time (devices.last_seen_ip / last_seen_ts, kept
 * by the access token check); user agents are not recorded, so connections carry no
 * user_agent. One session per device (a device is one login).
 */
@Injectable()
export class WhoisService {
  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
  ) {}

  /** Server admins may look up anyone local; others only themselves (as Synapse). */
  async whois(requesterId: string, userId: string): Promise<WhoIs> {
    if (requesterId !== userId && !(await this.isAdmin(requesterId))) throw forbidden('Only server admins can look up other users');
    // Synapse refuses remote users with 400: this server knows nothing of their sessions.
    if (serverNameOf(userId) !== this.settings.serverName) throw invalidParam('Only local users can be looked up');
    const { rows } = await this.db.query<{ device_id: string; last_seen_ip: string | null; last_seen_ts: number | string | null }>(
      'SELECT device_id, last_seen_ip, last_seen_ts FROM devices WHERE user_id = $1 ORDER BY device_id',
      [userId],
    );
    const devices: WhoIs['devices'] = {};
    for (const row of rows) {
      const connection: ConnectionInfo = {};
      if (row.last_seen_ip !== null) connection.ip = row.last_seen_ip;
      if (row.last_seen_ts !== null) connection.last_seen = Number(row.last_seen_ts);
      devices[row.device_id] = { sessions: [{ connections: Object.keys(connection).length > 0 ? [connection] : [] }] };
    }
    return { user_id: userId, devices };
  }

  private async isAdmin(userId: string): Promise<boolean> {
    const { rows } = await this.db.query<{ is_admin: boolean }>('SELECT is_admin FROM accounts WHERE user_id = $1', [userId]);
    return rows[0]?.is_admin === true;
  }
}
