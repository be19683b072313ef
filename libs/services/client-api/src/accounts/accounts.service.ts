import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { importSPKI, jwtVerify, type CryptoKey as JoseKey } from 'jose';
import type { Db, Queryable } from '@tessera/storage';
import { AccessTokensService, type Requester } from '../auth/access-tokens.service.js';
import { PasswordCheck } from '../auth/password-check.js';
import { RefreshTokensService } from '../auth/refresh-tokens.service.js';
import { hashPassword } from '../auth/password-hash.js';
import { randomDeviceId, randomToken, sha256Hex } from '../auth/token-hash.js';
import { UserInteractiveAuthService } from '../auth/user-interactive-auth.service.js';
import { EPHEMERAL_STORE, type EphemeralStore } from '../ephemeral/ephemeral-store.js';
import { MatrixError, badJson, forbidden, missingParam } from '../errors.js';
import { DeviceListUpdates } from '../federation/device-list-updates.js';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { accountsStore, recordDeviceListChange } from '../storage/accounts-store.js';
import { CLIENT_API_DB } from '../tokens.js';
import { optionalBoolean, optionalString, type JsonBody } from '../validation.js';
import { RegistrationTokensService } from './registration-tokens.service.js';
import { checkNewLocalpart } from './username.js';

export interface LoginResult {
  user_id: string;
  access_token: string;
  device_id: string;
  /** With `refresh_token: true` in the request (or a lifetime for tokens without one configured): the access token expires after expires_in_ms. */
  refresh_token?: string;
  expires_in_ms?: number;
}

/** A session started: the login to answer, and the device list position of its device when new. */
interface Session {
  login: LoginResult;
  newDeviceAt: number | undefined;
}

const MAX_PASSWORD_LENGTH = 512;
const NONCE_LIFETIME_MS = 60_000;

/** Registration, login and logout, password changes: the life of an account and its sessions. */
@Injectable()
export class AccountsService {
  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(AccessTokensService) private readonly tokens: AccessTokensService,
    @Inject(PasswordCheck) private readonly passwords: PasswordCheck,
    @Inject(UserInteractiveAuthService) private readonly uia: UserInteractiveAuthService,
    @Inject(EPHEMERAL_STORE) private readonly ephemeral: EphemeralStore,
    @Inject(DeviceListUpdates) private readonly deviceLists: DeviceListUpdates,
    @Inject(RefreshTokensService) private readonly refreshTokens: RefreshTokensService,
    @Inject(RegistrationTokensService) private readonly registrationTokens: RegistrationTokensService,
  ) {}

  private readonly deactivationHooks: Array<(userId: string) => Promise<void>> = [];

  /** Runs when an account is deactivated, before the request is answered. */
  onDeactivate(hook: (userId: string) => Promise<void>): void {
    this.deactivationHooks.push(hook);
  }

  private userIdOf(localpart: string): string {
    return `@${localpart}:${this.settings.serverName}`;
  }

  /** Throws the spec's error when the localpart cannot be registered. */
  async checkUsernameAvailable(username: string): Promise<string> {
    const localpart = username.toLowerCase();
    checkNewLocalpart(localpart, this.settings.serverName, this.settings.exclusiveUserNamespaces);
    if (await accountsStore.get(this.db, this.userIdOf(localpart))) throw new MatrixError(400, 'M_USER_IN_USE', 'This username is already taken');
    return localpart;
  }

  /** POST /register (kind=user). Order as Synapse: the username is checked before UIA. */
  async register(body: JsonBody, kind: string, ip: string | undefined): Promise<Record<string, unknown>> {
    if (kind === 'guest') throw new MatrixError(403, 'M_GUEST_ACCESS_FORBIDDEN', 'Guest access is disabled on this server');
    if (kind !== 'user') throw new MatrixError(400, 'M_INVALID_PARAM', `Unknown registration kind "${kind}": use "user"`);
    if (!this.settings.enableRegistration) throw forbidden('Registration has been disabled on this server');

    const username = optionalString(body, 'username');
    const password = optionalString(body, 'password');
    const deviceId = optionalString(body, 'device_id');
    const displayName = optionalString(body, 'initial_device_display_name');
    const inhibitLogin = optionalBoolean(body, 'inhibit_login') ?? false;
    const refreshable = optionalBoolean(body, 'refresh_token') ?? false;
    if (password !== undefined && password.length > MAX_PASSWORD_LENGTH) throw new MatrixError(400, 'M_INVALID_PARAM', 'The password is too long');
    if (body.auth !== undefined && body.auth !== null && password === undefined) throw missingParam('missing "password"');
    const localpart = username !== undefined ? await this.checkUsernameAvailable(username) : undefined;

    const { registrationToken } = await this.uia.require(body, 'register');
    try {
      if (password === undefined) throw missingParam('missing "password"');
      const passwordHash = await hashPassword(password, this.settings.passwordScryptCost);
      let started: Session | undefined;
      const result = await this.db.transaction(async (tx): Promise<Record<string, unknown>> => {
        started = undefined; // a retried transaction starts over
        const userId = localpart !== undefined ? this.userIdOf(localpart) : await this.freeGeneratedUserId(tx);
        if (!(await accountsStore.insert(tx, { userId, passwordHash, profile: { displayname: userId.slice(1, userId.indexOf(':')) } }))) {
          throw new MatrixError(400, 'M_USER_IN_USE', 'This username is already taken');
        }
        // The token's pending use becomes a completed one with the account (as Synapse).
        if (registrationToken !== undefined) await this.registrationTokens.complete(tx, registrationToken);
        if (inhibitLogin) return { user_id: userId };
        started = await this.startSession(tx, userId, deviceId, displayName, ip, refreshable);
        return { ...started.login };
      });
      if (started) await this.announceNewDevice(started);
      return result;
    } catch (error) {
      // No account: the use the UIA stage reserved is given back.
      if (registrationToken !== undefined) await this.registrationTokens.release(this.db, registrationToken);
      throw error;
    }
  }

  private async freeGeneratedUserId(tx: Queryable): Promise<string> {
    for (;;) {
      // Synapse makes numeric ids; a random 10-digit number avoids a shared counter.
      const candidate = this.userIdOf(String(1_000_000_000 + Math.floor(Math.random() * 9_000_000_000)));
      if (!(await accountsStore.get(tx, candidate))) return candidate;
    }
  }

  /**
   * Creates (or reuses) the device and issues its token. A reused device's old tokens end (spec:
   * /login device_id). A new device is a device list change: announceNewDevice after the commit.
   */
  private async startSession(
    tx: Queryable,
    userId: string,
    deviceId: string | undefined,
    displayName: string | undefined,
    ip: string | undefined,
    refreshable = false,
  ): Promise<Session> {
    const device = deviceId ?? randomDeviceId();
    if (deviceId !== undefined) {
      await this.tokens.revokeKeys(tx, await this.tokens.tokenKeysOfDevice(tx, userId, device));
      await this.tokens.revokeRefreshTokensOfDevices(tx, userId, [device]);
    }
    const created = await accountsStore.upsertDevice(tx, userId, device, displayName, ip);
    const newDeviceAt = created ? await recordDeviceListChange(tx, userId, device) : undefined;
    if (refreshable) {
      const { access_token, refresh_token, expires_in_ms } = await this.refreshTokens.issuePair(tx, userId, device);
      return { login: { user_id: userId, access_token, device_id: device, refresh_token, expires_in_ms }, newDeviceAt };
    }
    // Expiring only when nonrefreshable_access_token_lifetime or session_lifetime is set (then with expires_in_ms).
    const issued = await this.refreshTokens.issueNonRefreshable(tx, userId, device);
    return { login: { user_id: userId, device_id: device, ...issued }, newDeviceAt };
  }

  /** Other users' clients (here and on other servers) learn of a new device, as of a device that uploads keys. */
  private async announceNewDevice(session: Session): Promise<void> {
    if (session.newDeviceAt !== undefined) await this.deviceLists.changed(session.login.user_id, [session.newDeviceAt]);
  }

  /** GET /login: the login types offered. */
  loginFlows(): { flows: Record<string, unknown>[] } {
    const flows: Record<string, unknown>[] = [{ type: 'm.login.password' }, { type: 'm.login.token', get_login_token: true }];
    if (this.settings.jwtLogin) flows.push({ type: 'org.matrix.login.jwt' });
    return { flows };
  }

  /** POST /login. */
  async login(body: JsonBody, ip: string | undefined): Promise<Record<string, unknown>> {
    const type = body.type;
    if (type === undefined) throw missingParam('missing "type"');
    if (typeof type !== 'string') throw badJson('"type" must be a string');
    const deviceId = optionalString(body, 'device_id');
    const displayName = optionalString(body, 'initial_device_display_name');
    const refreshable = optionalBoolean(body, 'refresh_token') ?? false;

    let userId: string;
    if (type === 'm.login.password') userId = await this.passwordLogin(body);
    else if (type === 'm.login.token') userId = await this.tokenLogin(body);
    else if (type === 'org.matrix.login.jwt' && this.settings.jwtLogin) userId = await this.jwtLogin(body);
    else throw new MatrixError(400, 'M_UNKNOWN', `Unknown login type ${type}: GET /login lists the supported ones`);
    await this.refuseDeactivated(userId);

    const session = await this.db.transaction((tx) => this.startSession(tx, userId, deviceId, displayName, ip, refreshable));
    await this.announceNewDevice(session);
    return { ...session.login, home_server: this.settings.serverName };
  }

  private async passwordLogin(body: JsonBody): Promise<string> {
    const password = optionalString(body, 'password');
    if (password === undefined) throw missingParam('missing "password"');
    const named = this.passwords.userFromIdentifier(body);
    if (named instanceof MatrixError) throw named;
    if (named === undefined) throw missingParam('missing "identifier"');
    const userId = await this.passwords.canonicalUserId(named);
    if (userId === undefined || !(await this.passwords.check(userId, password))) throw forbidden('Invalid username or password');
    return userId;
  }

  /** As Synapse: a deactivated account is told so (after the password check, so this leaks nothing). */
  private async refuseDeactivated(userId: string): Promise<void> {
    if ((await accountsStore.get(this.db, userId))?.deactivated) throw new MatrixError(403, 'M_USER_DEACTIVATED', 'This account has been deactivated');
  }

  private async tokenLogin(body: JsonBody): Promise<string> {
    const token = optionalString(body, 'token');
    if (token === undefined) throw missingParam('missing "token"');
    // Single use: the DELETE that finds it is the one that consumes it.
    const { rows } = await this.db.query<{ user_id: string; expires_ts: number }>('DELETE FROM login_tokens WHERE token_hash = $1 RETURNING user_id, expires_ts', [sha256Hex(token)]);
    if (!rows[0] || rows[0].expires_ts < Date.now()) throw forbidden('Invalid or expired login token');
    return rows[0].user_id;
  }

  private jwtKey?: Promise<Uint8Array | JoseKey>;

  private async jwtLogin(body: JsonBody): Promise<string> {
    const config = this.settings.jwtLogin!;
    const token = optionalString(body, 'token');
    if (token === undefined) throw missingParam('missing "token"');
    this.jwtKey ??= config.algorithm.startsWith('HS') ? Promise.resolve(new TextEncoder().encode(config.secret)) : importSPKI(config.secret, config.algorithm);
    let subject: unknown;
    try {
      const { payload } = await jwtVerify(token, await this.jwtKey, { algorithms: [config.algorithm], issuer: config.issuer, audience: config.audience });
      subject = payload[config.subjectClaim];
    } catch (error) {
      throw forbidden(`JWT validation failed: ${(error as Error).message}`);
    }
    if (typeof subject !== 'string' || subject === '') throw forbidden(`JWT validation failed: no "${config.subjectClaim}" claim`);
    const userId = subject.startsWith('@') ? subject : this.userIdOf(subject.toLowerCase());
    if (!userId.endsWith(`:${this.settings.serverName}`)) throw forbidden('The JWT names a user of another server');
    // As Synapse: a valid JWT for an unknown user creates the account (without a password).
    if (!(await accountsStore.get(this.db, userId))) {
      checkNewLocalpart(userId.slice(1, userId.indexOf(':')), this.settings.serverName, []);
      await accountsStore.insert(this.db, { userId, passwordHash: null, profile: { displayname: userId.slice(1, userId.indexOf(':')) } });
    }
    return userId;
  }

  /** POST /v1/login/get_token: a short-lived m.login.token for signing in another device. */
  async createLoginToken(requester: Requester, body: JsonBody): Promise<{ login_token: string; expires_in_ms: number }> {
    await this.uia.require(body, 'get_login_token', requester.userId);
    const token = randomToken(24);
    const lifetime = this.settings.loginTokenLifetimeMs;
    await this.db.query('DELETE FROM login_tokens WHERE expires_ts < $1', [Date.now()]);
    await this.db.query('INSERT INTO login_tokens (token_hash, user_id, expires_ts) VALUES ($1, $2, $3)', [sha256Hex(token), requester.userId, Date.now() + lifetime]);
    return { login_token: token, expires_in_ms: lifetime };
  }

  /** POST /logout: this token and its device go (spec: the device is deleted with its keys). */
  async logout(requester: Requester): Promise<void> {
    await this.deleteDevices(requester.userId, [requester.deviceId], [requester.tokenKey]);
  }

  /** POST /logout/all: every token and device of the user. */
  async logoutAll(requester: Requester): Promise<void> {
    const devices = await accountsStore.listDevices(this.db, requester.userId);
    await this.deleteDevices(requester.userId, devices.map((d) => d.device_id), [requester.tokenKey]);
  }

  /** Deletes devices with their tokens and keys; extraTokenKeys covers tokens whose device row is missing. */
  async deleteDevices(userId: string, deviceIds: string[], extraTokenKeys: string[] = []): Promise<void> {
    const positions = await this.db.transaction(async (tx) => {
      const { tokenKeys, positions } = await accountsStore.deleteDevices(tx, userId, deviceIds);
      await this.tokens.revokeKeys(tx, [...new Set([...tokenKeys, ...extraTokenKeys])]);
      await this.tokens.revokeRefreshTokensOfDevices(tx, userId, deviceIds);
      return positions;
    });
    await this.deviceLists.changed(userId, positions);
  }

  /** POST /account/password. */
  async changePassword(requester: Requester, body: JsonBody): Promise<void> {
    const newPassword = optionalString(body, 'new_password');
    const logoutDevices = optionalBoolean(body, 'logout_devices') ?? true;
    if (newPassword === undefined) throw missingParam('missing "new_password"');
    if (newPassword.length > MAX_PASSWORD_LENGTH) throw new MatrixError(400, 'M_INVALID_PARAM', 'The password is too long');
    await this.uia.require(body, 'password', requester.userId);
    const hash = await hashPassword(newPassword, this.settings.passwordScryptCost);
    await accountsStore.setPasswordHash(this.db, requester.userId, hash);
    if (logoutDevices) {
      const others = (await accountsStore.listDevices(this.db, requester.userId)).map((d) => d.device_id).filter((id) => id !== requester.deviceId);
      await this.deleteDevices(requester.userId, others);
    }
  }

  /**
   * POST /account/deactivate: the account can no longer log in and every session ends. The
   * user id stays taken (spec: ids are never reused). The profile is no longer served, and
   * with `erase: true` it is deleted. The user leaves every room they are joined to, invited
   * to or knocking on (the rooms side, through onDeactivate), as Synapse.
   */
  async deactivate(requester: Requester, body: JsonBody): Promise<{ id_server_unbind_result: 'no-support' | 'success' }> {
    const erase = optionalBoolean(body, 'erase') === true;
    optionalString(body, 'id_server');
    await this.uia.require(body, 'deactivate', requester.userId);
    return this.deactivateAccount(requester.userId, erase, [requester.tokenKey]);
  }

  /**
   * Deactivation itself, for POST /account/deactivate and Synapse's admin API (POST
   * /_synapse/admin/v1/deactivate, PUT /_synapse/admin/v2/users with deactivated: true).
   * extraTokenKeys: tokens to revoke whose device row may be missing (the requester's own).
   */
  async deactivateAccount(userId: string, erase: boolean, extraTokenKeys: string[] = []): Promise<{ id_server_unbind_result: 'no-support' | 'success' }> {
    await this.db.query(`UPDATE accounts SET deactivated = true${erase ? ", profile = '{}'::jsonb, erased = true" : ''} WHERE user_id = $1`, [userId]);
    for (const hook of this.deactivationHooks) await hook(userId);
    const devices = await accountsStore.listDevices(this.db, userId);
    await this.deleteDevices(userId, devices.map((d) => d.device_id), extraTokenKeys);
    // No third-party identifiers are ever bound here, so there is nothing to unbind.
    return { id_server_unbind_result: 'success' };
  }

  /** GET /_synapse/admin/v1/register: a nonce for one shared-secret registration. */
  async sharedSecretNonce(): Promise<{ nonce: string }> {
    if (!this.settings.registrationSharedSecret) throw new MatrixError(400, 'M_UNKNOWN', 'Shared secret registration is not enabled');
    const nonce = randomBytes(32).toString('hex');
    await this.ephemeral.putTemporary(`register-nonce:${nonce}`, '1', NONCE_LIFETIME_MS);
    return { nonce };
  }

  /**
   * POST /_synapse/admin/v1/register, as register_new_matrix_user sends it: mac is
   * HMAC-SHA1(secret, nonce \0 username \0 password \0 "admin"|"notadmin" [\0 user_type]).
   */
  async sharedSecretRegister(body: JsonBody, ip: string | undefined): Promise<Record<string, unknown>> {
    const secret = this.settings.registrationSharedSecret;
    if (!secret) throw new MatrixError(400, 'M_UNKNOWN', 'Shared secret registration is not enabled');
    const nonce = optionalString(body, 'nonce');
    const username = optionalString(body, 'username');
    const password = optionalString(body, 'password');
    const mac = optionalString(body, 'mac');
    const admin = optionalBoolean(body, 'admin') ?? false;
    const userType = optionalString(body, 'user_type');
    const displayname = optionalString(body, 'displayname');
    if (nonce === undefined) throw missingParam('missing "nonce"');
    if (username === undefined) throw missingParam('missing "username"');
    if (password === undefined) throw missingParam('missing "password"');
    if (mac === undefined) throw missingParam('missing "mac"');
    if (password.length > MAX_PASSWORD_LENGTH) throw new MatrixError(400, 'M_INVALID_PARAM', 'The password is too long');
    if (!(await this.ephemeral.takeTemporary(`register-nonce:${nonce}`))) throw new MatrixError(400, 'M_UNKNOWN', 'Unrecognised nonce: get a fresh one with GET /_synapse/admin/v1/register');

    const hmac = createHmac('sha1', secret);
    hmac.update(nonce).update('\x00').update(username).update('\x00').update(password).update('\x00').update(admin ? 'admin' : 'notadmin');
    if (userType !== undefined) hmac.update('\x00').update(userType);
    const expected = hmac.digest();
    const given = Buffer.from(mac, 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw forbidden('HMAC incorrect');

    const localpart = await this.checkUsernameAvailable(username);
    const passwordHash = await hashPassword(password, this.settings.passwordScryptCost);
    const userId = this.userIdOf(localpart);
    const result = await this.db.transaction(async (tx) => {
      const inserted = await accountsStore.insert(tx, { userId, passwordHash, isAdmin: admin, userType, profile: { displayname: displayname ?? localpart } });
      if (!inserted) throw new MatrixError(400, 'M_USER_IN_USE', 'This username is already taken');
      return this.startSession(tx, userId, undefined, undefined, ip);
    });
    await this.announceNewDevice(result);
    return { ...result.login, home_server: this.settings.serverName };
  }
}
