import { Inject, Injectable } from '@nestjs/common';
import { getUserMemberships, type Db } from '@tessera/storage';
import type { Requester } from '../auth/access-tokens.service.js';
import { AccountsService } from '../accounts/accounts.service.js';
import { checkNewLocalpart } from '../accounts/username.js';
import { hashPassword } from '../auth/password-hash.js';
import { badJson, invalidParam, MatrixError, missingParam, notFound } from '../errors.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { accountsStore, type AccountRow, type DeviceRow } from '../storage/accounts-store.js';
import { CLIENT_API_DB } from '../tokens.js';
import { ProfileService } from '../user-data/profile.service.js';
import { optionalBoolean, optionalString, serverNameOf, type JsonBody } from '../validation.js';
import { likeLiteral, queryBoolean, queryEnum, queryOffset, queryString } from './admin-query.js';

const MAX_PASSWORD_LENGTH = 512;
/** Synapse's built-in user types (no extra ones are configurable here). */
const USER_TYPES = ['bot', 'support'];

const ORDER_BY = ['name', 'is_guest', 'admin', 'user_type', 'deactivated', 'shadow_banned', 'displayname', 'avatar_url', 'creation_ts', 'last_seen_ts', 'locked'] as const;
type UserOrder = (typeof ORDER_BY)[number];
/** The column of each order; what this server has no notion of (guests, shadow bans, locks) is the same for everyone. */
const ORDER_COLUMN: Record<UserOrder, string> = {
  name: 'a.user_id',
  is_guest: 'false',
  admin: 'a.is_admin',
  user_type: 'a.user_type',
  deactivated: 'a.deactivated',
  shadow_banned: 'false',
  displayname: "a.profile->>'displayname'",
  avatar_url: "a.profile->>'avatar_url'",
  creation_ts: 'a.created_ts',
  last_seen_ts: 'last_seen_ts',
  locked: 'false',
};

export interface ListUsersQuery {
  from?: unknown;
  limit?: unknown;
  user_id?: unknown;
  name?: unknown;
  guests?: unknown;
  deactivated?: unknown;
  admins?: unknown;
  order_by?: unknown;
  dir?: unknown;
}

interface ListedRow {
  user_id: string;
  user_type: string | null;
  is_admin: boolean;
  deactivated: boolean;
  erased: boolean;
  created_ts: number | string;
  displayname: string | null;
  avatar_url: string | null;
  last_seen_ts: number | string | null;
}

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));
const profileString = (profile: Record<string, unknown>, key: string): string | null => (typeof profile[key] === 'string' ? (profile[key] as string) : null);

/**
 * Synapse's user admin API (docs/admin_api/user_admin_api.md) over client-api's accounts and
 * devices. Account changes reuse what the Client-Server API does: deactivation is
 * AccountsService's (sessions end, rooms left, profile erased on request), profile changes go
 * through ProfileService (so member events follow), device removal through deleteDevices.
 * This server has no guests, shadow bans, account locks, third-party ids or SSO ids: those
 * fields are always false or empty.
 */
@Injectable()
export class UsersAdminService {
  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(AccountsService) private readonly accounts: AccountsService,
    @Inject(ProfileService) private readonly profiles: ProfileService,
  ) {}

  /** GET /_synapse/admin/v2/users. */
  async list(query: ListUsersQuery): Promise<{ users: Record<string, unknown>[]; total: number; next_token?: string }> {
    const from = queryOffset(query.from, 'from', 0);
    const limit = queryOffset(query.limit, 'limit', 100);
    const name = queryString(query.name, 'name');
    const userId = queryString(query.user_id, 'user_id');
    queryBoolean(query.guests, 'guests'); // there are no guest accounts here
    const withDeactivated = queryBoolean(query.deactivated, 'deactivated') === true;
    const admins = queryBoolean(query.admins, 'admins');
    const orderBy = queryEnum(query.order_by, 'order_by', ORDER_BY, 'name');
    const dir = queryEnum(query.dir, 'dir', ['f', 'b'] as const, 'f');

    const filters: string[] = [];
    const args: unknown[] = [];
    if (name) {
      // As Synapse: the localpart or the displayname contains it (case-insensitive); user_id is then ignored.
      args.push(`@%${likeLiteral(name.toLowerCase())}%:%`, `%${likeLiteral(name.toLowerCase())}%`);
      filters.push(`(a.user_id LIKE $${args.length - 1} OR LOWER(a.profile->>'displayname') LIKE $${args.length})`);
    } else if (userId) {
      args.push(`%${likeLiteral(userId.toLowerCase())}%`);
      filters.push(`a.user_id LIKE $${args.length}`);
    }
    if (!withDeactivated) filters.push('NOT a.deactivated');
    if (admins !== undefined) filters.push(admins ? 'a.is_admin' : 'NOT a.is_admin');
    const where = filters.length > 0 ? `WHERE ${filters.join(' AND ')}` : '';
    const direction = dir === 'b' ? 'DESC' : 'ASC';

    const { rows: counted } = await this.db.query<{ n: number | string }>(`SELECT COUNT(*) AS n FROM accounts a ${where}`, args);
    const total = Number(counted[0]?.n ?? 0);
    const { rows } = await this.db.query<ListedRow>(
      `SELECT a.user_id, a.user_type, a.is_admin, a.deactivated, a.erased, a.created_ts,
              a.profile->>'displayname' AS displayname, a.profile->>'avatar_url' AS avatar_url,
              (SELECT MAX(d.last_seen_ts) FROM devices d WHERE d.user_id = a.user_id) AS last_seen_ts
         FROM accounts a ${where}
        ORDER BY ${ORDER_COLUMN[orderBy]} ${direction}, a.user_id ASC
        LIMIT $${args.length + 1} OFFSET $${args.length + 2}`,
      [...args, limit, from],
    );
    const users = rows.map((r) => ({
      name: r.user_id,
      user_type: r.user_type,
      is_guest: false,
      admin: r.is_admin,
      deactivated: r.deactivated,
      erased: r.erased,
      shadow_banned: false,
      displayname: r.displayname,
      avatar_url: r.avatar_url,
      // The list gives milliseconds (Synapse multiplies its seconds by 1000 here).
      creation_ts: Number(r.created_ts),
      last_seen_ts: num(r.last_seen_ts),
      locked: false,
    }));
    return { users, total, ...(from + limit < total ? { next_token: String(from + users.length) } : {}) };
  }

  /** GET /_synapse/admin/v2/users/{userId}. */
  async get(userId: string): Promise<Record<string, unknown>> {
    this.requireLocal(userId, 'Can only look up local users');
    return this.view(await this.requireAccount(userId));
  }

  /** PUT /_synapse/admin/v2/users/{userId}: 201 and the user when created, 200 when modified. */
  async put(requester: Requester, userId: string, body: JsonBody): Promise<{ created: boolean; user: Record<string, unknown> }> {
    this.requireLocal(userId, 'This endpoint can only be used with local users');
    const password = optionalString(body, 'password');
    if (password !== undefined && password.length > MAX_PASSWORD_LENGTH) throw invalidParam('Invalid password: longer than 512 characters');
    const logoutDevices = optionalBoolean(body, 'logout_devices') ?? true;
    const admin = optionalBoolean(body, 'admin');
    const deactivated = optionalBoolean(body, 'deactivated');
    const locked = optionalBoolean(body, 'locked');
    if (locked === true) throw new MatrixError(400, 'M_UNRECOGNIZED', 'Locking accounts is not supported by this server');
    const displayname = optionalString(body, 'displayname');
    if (displayname !== undefined && displayname.length > 256) throw badJson('"displayname" is longer than 256 characters');
    const avatarUrl = optionalString(body, 'avatar_url');
    if (avatarUrl !== undefined && avatarUrl !== '' && !avatarUrl.startsWith('mxc://')) throw invalidParam('"avatar_url" must be an mxc:// URI');
    const userType = body.user_type;
    if (userType !== undefined && userType !== null && (typeof userType !== 'string' || !USER_TYPES.includes(userType))) throw invalidParam('Invalid user type');
    for (const key of ['threepids', 'external_ids']) {
      const list = body[key];
      if (list === undefined || list === null) continue;
      if (!Array.isArray(list)) throw badJson(`"${key}" must be a list`);
      if (list.length > 0) throw new MatrixError(400, 'M_UNRECOGNIZED', `"${key}" are not supported by this server: give an empty list or leave it out`);
    }

    const existing = await accountsStore.get(this.db, userId);
    if (!existing) {
      const localpart = userId.slice(1, userId.indexOf(':'));
      checkNewLocalpart(localpart, this.settings.serverName, []);
      const passwordHash = password !== undefined ? await hashPassword(password, this.settings.passwordScryptCost) : null;
      const profile: Record<string, unknown> = { displayname: displayname || localpart };
      if (avatarUrl) profile.avatar_url = avatarUrl;
      const inserted = await accountsStore.insert(this.db, {
        userId, passwordHash, isAdmin: admin ?? false, ...(typeof userType === 'string' ? { userType } : {}), profile,
      });
      if (!inserted) throw new MatrixError(400, 'M_USER_IN_USE', 'This username is already taken');
      if (deactivated === true) await this.accounts.deactivateAccount(userId, false);
      return { created: true, user: await this.view(await this.requireAccount(userId)) };
    }

    // A reactivated account first, so that its profile can change with it.
    if (deactivated === false && existing.deactivated) await this.db.query('UPDATE accounts SET deactivated = false, erased = false WHERE user_id = $1', [userId]);
    const active = deactivated === false || !existing.deactivated;
    if (active && displayname !== undefined) await this.setProfileField(userId, 'displayname', displayname);
    if (active && avatarUrl !== undefined) await this.setProfileField(userId, 'avatar_url', avatarUrl);
    if (admin !== undefined && admin !== existing.is_admin) await this.setAdminFlag(requester, userId, admin);
    if ('user_type' in body) await this.db.query('UPDATE accounts SET user_type = $2 WHERE user_id = $1', [userId, userType ?? null]);
    if (password !== undefined) await this.setPassword(requester, userId, password, logoutDevices);
    if (deactivated === true && !existing.deactivated) await this.accounts.deactivateAccount(userId, false);
    return { created: false, user: await this.view(await this.requireAccount(userId)) };
  }

  /** POST /_synapse/admin/v1/deactivate/{userId}: {erase?}. */
  async deactivate(userId: string, body: JsonBody): Promise<{ id_server_unbind_result: 'no-support' | 'success' }> {
    this.requireLocal(userId, 'Can only deactivate local users');
    await this.requireAccount(userId);
    const erase = optionalBoolean(body, 'erase') ?? false;
    return this.accounts.deactivateAccount(userId, erase);
  }

  /** POST /_synapse/admin/v1/reset_password/{userId}: {new_password, logout_devices?}. */
  async resetPassword(requester: Requester, userId: string, body: JsonBody): Promise<void> {
    this.requireLocal(userId, 'Can only change the password of local users');
    const newPassword = optionalString(body, 'new_password');
    if (newPassword === undefined) throw missingParam('Missing params: ["new_password"]');
    if (newPassword.length > MAX_PASSWORD_LENGTH) throw invalidParam('Invalid password: longer than 512 characters');
    const logoutDevices = optionalBoolean(body, 'logout_devices') ?? true;
    await this.requireAccount(userId);
    await this.setPassword(requester, userId, newPassword, logoutDevices);
  }

  /** GET /_synapse/admin/v1/users/{userId}/admin. */
  async isAdmin(userId: string): Promise<{ admin: boolean }> {
    this.requireLocal(userId, 'Only local users can be admins of this homeserver');
    return { admin: (await this.requireAccount(userId)).is_admin };
  }

  /** PUT /_synapse/admin/v1/users/{userId}/admin: {admin}. */
  async putAdmin(requester: Requester, userId: string, body: JsonBody): Promise<void> {
    this.requireLocal(userId, 'Only local users can be admins of this homeserver');
    const admin = body.admin;
    if (admin === undefined) throw missingParam('Missing params: ["admin"]');
    if (typeof admin !== 'boolean') throw badJson('Param "admin" must be a boolean');
    await this.requireAccount(userId);
    await this.setAdminFlag(requester, userId, admin);
  }

  /** GET /_synapse/admin/v2/users/{userId}/devices. */
  async devices(userId: string): Promise<{ devices: Record<string, unknown>[]; total: number }> {
    this.requireLocal(userId, 'Can only look up local users');
    await this.requireAccount(userId);
    const devices = (await accountsStore.listDevices(this.db, userId)).map(deviceView);
    return { devices, total: devices.length };
  }

  /** GET /_synapse/admin/v2/users/{userId}/devices/{deviceId}. */
  async device(userId: string, deviceId: string): Promise<Record<string, unknown>> {
    this.requireLocal(userId, 'Can only look up local users');
    await this.requireAccount(userId);
    const row = await accountsStore.getDevice(this.db, userId, deviceId);
    if (!row) throw notFound('No device found');
    return deviceView(row);
  }

  /** DELETE /_synapse/admin/v2/users/{userId}/devices/{deviceId}, POST .../delete_devices: tokens, keys and pushers go with them. */
  async deleteDevices(userId: string, deviceIds: string[]): Promise<void> {
    this.requireLocal(userId, 'Can only delete devices of local users');
    await this.requireAccount(userId);
    await this.accounts.deleteDevices(userId, deviceIds);
  }

  /** GET /_synapse/admin/v1/users/{userId}/joined_rooms (any user: the rooms this server knows them joined to). */
  async joinedRooms(userId: string): Promise<{ joined_rooms: string[]; total: number }> {
    const rooms = (await getUserMemberships(this.db, userId, ['join'])).map((m) => m.roomId);
    return { joined_rooms: rooms, total: rooms.length };
  }

  private async setAdminFlag(requester: Requester, userId: string, admin: boolean): Promise<void> {
    if (!admin && userId === requester.userId) throw invalidParam('You may not demote yourself.');
    await this.db.query('UPDATE accounts SET is_admin = $2 WHERE user_id = $1', [userId, admin]);
  }

  /** As Synapse's set_password: every device is logged out unless asked not to (but the requester's own, when it is theirs). */
  private async setPassword(requester: Requester, userId: string, password: string, logoutDevices: boolean): Promise<void> {
    await accountsStore.setPasswordHash(this.db, userId, await hashPassword(password, this.settings.passwordScryptCost));
    if (!logoutDevices) return;
    const devices = (await accountsStore.listDevices(this.db, userId)).map((d) => d.device_id).filter((id) => userId !== requester.userId || id !== requester.deviceId);
    await this.accounts.deleteDevices(userId, devices);
  }

  /** An empty string removes the field (Synapse). The change reaches the user's rooms as for the user's own. */
  private async setProfileField(userId: string, key: 'displayname' | 'avatar_url', value: string): Promise<void> {
    if (value === '') await this.profiles.deleteField(userId, userId, key);
    else await this.profiles.setField(userId, userId, key, { [key]: value });
  }

  private requireLocal(userId: string, message: string): void {
    if (serverNameOf(userId) !== this.settings.serverName) throw invalidParam(message);
  }

  private async requireAccount(userId: string): Promise<AccountRow> {
    const account = await accountsStore.get(this.db, userId);
    if (!account) throw notFound('User not found');
    return account;
  }

  private async view(account: AccountRow): Promise<Record<string, unknown>> {
    const { rows } = await this.db.query<{ last_seen_ts: number | string | null }>('SELECT MAX(last_seen_ts) AS last_seen_ts FROM devices WHERE user_id = $1', [account.user_id]);
    return {
      name: account.user_id,
      displayname: profileString(account.profile, 'displayname'),
      avatar_url: profileString(account.profile, 'avatar_url'),
      threepids: [],
      external_ids: [],
      is_guest: false,
      admin: account.is_admin,
      deactivated: account.deactivated,
      erased: account.erased,
      shadow_banned: false,
      locked: false,
      suspended: false,
      // Seconds here, as Synapse's single-user answer gives them (its list gives milliseconds).
      creation_ts: Math.floor(Number(account.created_ts) / 1000),
      last_seen_ts: num(rows[0]?.last_seen_ts ?? null),
      appservice_id: null,
      consent_server_notice_sent: null,
      consent_version: null,
      consent_ts: null,
      user_type: account.user_type,
    };
  }
}

function deviceView(row: DeviceRow): Record<string, unknown> {
  return {
    device_id: row.device_id,
    ...(row.display_name !== null ? { display_name: row.display_name } : {}),
    last_seen_ip: row.last_seen_ip,
    // User agents are not recorded here.
    last_seen_user_agent: null,
    last_seen_ts: num(row.last_seen_ts),
    user_id: row.user_id,
    dehydrated: false,
  };
}
