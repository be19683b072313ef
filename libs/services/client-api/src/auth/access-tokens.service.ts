import { Inject, Injectable } from '@nestjs/common';
import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';
import type { Db, Queryable } from '@tessera/storage';
import { CLIENT_API_SETTINGS, type ClientApiSettings } from '../settings.js';
import { StreamChanges } from '../stream-changes.js';
import { CLIENT_API_DB } from '../tokens.js';
import { randomToken, sha256Hex } from './token-hash.js';

export interface Requester {
  userId: string;
  deviceId: string;
  /** The key of this token in access_tokens (a hash; or 'jwt:' + jti). */
  tokenKey: string;
}

/** What a presented access token turned out to be: its requester, expired (soft logout), or unknown. */
export type TokenCheck = Requester | 'expired' | undefined;

/** How an access token is issued: with an expiry and the refresh token it belongs to (refresh-tokens.service.ts). */
export interface IssueOptions {
  expiresTs?: number;
  refreshTokenKey?: string;
}

const JWT_AUDIENCE = 'tessera-client-api';
/** How long a token found valid is trusted without asking the database again. */
const CACHE_TTL_MS = 30_000;
const MAX_CACHED = 100_000;

/**
 * Access tokens. Opaque (default): 32 random bytes; only their SHA-256 is stored, so a leak of
 * the database leaks no usable token. JWT (optional): signed HS256 with the configured secret,
 * verified without a lookup of the token itself, but checked against the revocation list so
 * logout takes effect at once.
 *
 * A token found valid is remembered for CACHE_TTL_MS, so a request costs no query. Revocation
 * goes through revokeKeys, which drops the entry here and, through StreamChanges (relayed on
 * the bus), on every replica; a revoked key is not cached again until its revocation has
 * surely committed. If that bus message were lost, another replica would trust the token
 * until its entry expires: at most CACHE_TTL_MS.
 *
 * Tokens issued with a refresh token (refresh-tokens.service.ts) expire, and so do the others
 * when nonrefreshable_access_token_lifetime or session_lifetime is set: expires_ts on the row
 * and, for JWTs, the `exp` claim. A cached entry never outlives its token, and an expired token
 * still on record is told apart ('expired': 401 with soft_logout: true) from an unknown one.
 * Expired rows stay on record for a retention period, then TokenCleanupService removes them.
 */
@Injectable()
export class AccessTokensService {
  private readonly jwtKey?: Uint8Array;
  /** Rate-limits last_seen writes: one per device per minute. */
  private readonly lastTouched = new Map<string, number>();
  /** token key -> who it is, until when it is trusted. */
  private readonly valid = new Map<string, { requester: Requester; until: number }>();
  /** token keys being revoked -> until when they must not be cached (their transaction may not have committed). */
  private readonly revoking = new Map<string, number>();

  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(CLIENT_API_SETTINGS) private readonly settings: ClientApiSettings,
    @Inject(StreamChanges) private readonly changes: StreamChanges,
  ) {
    changes.listenTokensRevoked((keys) => this.forget(keys));
    if (settings.accessTokenFormat === 'jwt') {
      if (!settings.jwtAccessTokenSecret) throw new Error('access tokens as JWT need jwtAccessTokenSecret in the client-api settings');
      this.jwtKey = new TextEncoder().encode(settings.jwtAccessTokenSecret);
    }
  }

  /** Issues a token for the device (the device row must exist or be created in the same flow). */
  async issue(userId: string, deviceId: string, db: Queryable = this.db, options: IssueOptions = {}): Promise<string> {
    if (this.jwtKey) {
      const jti = randomToken(16);
      const jwt = new SignJWT({ device_id: deviceId })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(userId)
        .setJti(jti)
        .setIssuedAt()
        .setIssuer(this.settings.serverName)
        .setAudience(JWT_AUDIENCE);
      // An expiring JWT carries its expiry, so even a verifier of the signature alone refuses it late.
      if (options.expiresTs !== undefined) jwt.setExpirationTime(Math.floor(options.expiresTs / 1000));
      const token = await jwt.sign(this.jwtKey);
      await this.store(db, `jwt:${jti}`, userId, deviceId, options);
      return token;
    }
    // The syt_ prefix (as Synapse) lets secret scanners recognise a leaked token.
    const token = `syt_${Buffer.from(userId).toString('base64url')}_${randomToken(24)}`;
    await this.store(db, sha256Hex(token), userId, deviceId, options);
    return token;
  }

  private async store(db: Queryable, tokenKey: string, userId: string, deviceId: string, options: IssueOptions): Promise<void> {
    await db.query('INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts, expires_ts, refresh_token_hash) VALUES ($1, $2, $3, $4, $5, $6)', [
      tokenKey,
      userId,
      deviceId,
      Date.now(),
      options.expiresTs ?? null,
      options.refreshTokenKey ?? null,
    ]);
  }

  /** The requester a token belongs to, or undefined when it is unknown, revoked or malformed. */
  async resolve(token: string, ip?: string): Promise<Requester | undefined> {
    const checked = await this.check(token, ip);
    return checked === 'expired' ? undefined : checked;
  }

  /** As resolve, telling an expired token (answered 401 with soft_logout: true) from an unknown one. */
  async check(token: string, ip?: string): Promise<TokenCheck> {
    const checked = this.looksLikeJwt(token) ? await this.resolveJwt(token) : await this.resolveOpaque(token);
    if (checked !== undefined && checked !== 'expired') this.touch(checked, ip);
    return checked;
  }

  private cached(tokenKey: string): Requester | undefined {
    const entry = this.valid.get(tokenKey);
    if (!entry) return undefined;
    if (entry.until > Date.now()) return entry.requester;
    this.valid.delete(tokenKey);
    return undefined;
  }

  private remember(requester: Requester, expiresTs: number | null = null): void {
    const now = Date.now();
    const revokedUntil = this.revoking.get(requester.tokenKey);
    if (revokedUntil !== undefined) {
      if (revokedUntil > now) return;
      this.revoking.delete(requester.tokenKey);
    }
    if (this.valid.size >= MAX_CACHED) this.valid.clear();
    // An expiring token is trusted no longer than it lives.
    this.valid.set(requester.tokenKey, { requester, until: Math.min(now + CACHE_TTL_MS, expiresTs ?? Infinity) });
  }

  private forget(tokenKeys: string[]): void {
    const until = Date.now() + 2 * CACHE_TTL_MS;
    for (const key of tokenKeys) {
      this.valid.delete(key);
      this.revoking.set(key, until);
    }
    if (this.revoking.size > MAX_CACHED) for (const [key, t] of this.revoking) if (t < Date.now()) this.revoking.delete(key);
  }

  private looksLikeJwt(token: string): boolean {
    return this.jwtKey !== undefined && token.split('.').length === 3;
  }

  private async resolveOpaque(token: string): Promise<TokenCheck> {
    const tokenKey = sha256Hex(token);
    const known = this.cached(tokenKey);
    if (known) return known;
    return this.lookUp(tokenKey);
  }

  /**
   * The row of a token (opaque, or a refreshable JWT): unknown, expired, or valid. The first
   * use of an access token issued by /refresh ends the refresh token it replaced, with that
   * one's access tokens (spec: "the old refresh token remains valid until the new access token
   * or refresh token is used").
   */
  private async lookUp(tokenKey: string): Promise<TokenCheck> {
    const { rows } = await this.db.query<{ user_id: string; device_id: string; expires_ts: number | string | null; refresh_token_hash: string | null; prev_token_hash: string | null }>(
      `SELECT a.user_id, a.device_id, a.expires_ts, a.refresh_token_hash, r.prev_token_hash
       FROM access_tokens a LEFT JOIN refresh_tokens r ON r.token_hash = a.refresh_token_hash WHERE a.token_hash = $1`,
      [tokenKey],
    );
    const row = rows[0];
    if (!row) return undefined;
    const expiresTs = row.expires_ts === null ? null : Number(row.expires_ts);
    if (expiresTs !== null && expiresTs <= Date.now()) return 'expired';
    if (row.refresh_token_hash !== null && row.prev_token_hash !== null) {
      await this.db.transaction((tx) => this.retirePredecessor(tx, row.refresh_token_hash!));
    }
    const requester = { userId: row.user_id, deviceId: row.device_id, tokenKey };
    this.remember(requester, expiresTs);
    return requester;
  }

  private async resolveJwt(token: string): Promise<TokenCheck> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.jwtKey!, { issuer: this.settings.serverName, audience: JWT_AUDIENCE, algorithms: ['HS256'] }));
    } catch (error) {
      // Expired but signed by us: a soft logout when the token is still on record (not revoked).
      if (error instanceof joseErrors.JWTExpired && typeof error.payload.jti === 'string') {
        return (await this.lookUp(`jwt:${error.payload.jti}`)) === undefined ? undefined : 'expired';
      }
      return undefined;
    }
    if (typeof payload.sub !== 'string' || typeof payload.jti !== 'string' || typeof payload.device_id !== 'string') return undefined;
    const tokenKey = `jwt:${payload.jti}`;
    const known = this.cached(tokenKey);
    if (known) return known;
    // An expiring JWT (it has exp: refreshable, or under a configured lifetime) is looked up by its row like an opaque token.
    if (payload.exp !== undefined) return this.lookUp(tokenKey);
    const { rows } = await this.db.query('SELECT 1 FROM revoked_access_tokens WHERE jti = $1', [payload.jti]);
    if (rows.length > 0) return undefined;
    const requester = { userId: payload.sub, deviceId: payload.device_id, tokenKey };
    this.remember(requester);
    return requester;
  }

  /**
   * The refresh token `refreshTokenKey` (or its access token) is being used: the refresh token
   * it replaced goes, with that one's access tokens (inside the caller's transaction). No-op
   * when already done (by another request or replica).
   */
  async retirePredecessor(tx: Queryable, refreshTokenKey: string): Promise<void> {
    const { rows } = await tx.query<{ prev_token_hash: string | null }>('SELECT prev_token_hash FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE', [refreshTokenKey]);
    const prev = rows[0]?.prev_token_hash;
    if (!prev) return;
    await tx.query('UPDATE refresh_tokens SET prev_token_hash = NULL WHERE token_hash = $1', [refreshTokenKey]);
    await this.revokeRefreshTokens(tx, [prev]);
  }

  /** Revokes refresh tokens by key and the access tokens issued with them (inside the caller's transaction). */
  async revokeRefreshTokens(tx: Queryable, refreshTokenKeys: string[]): Promise<void> {
    if (refreshTokenKeys.length === 0) return;
    const { rows } = await tx.query<{ token_hash: string }>('SELECT token_hash FROM access_tokens WHERE refresh_token_hash = ANY($1)', [refreshTokenKeys]);
    await this.revokeKeys(tx, rows.map((r) => r.token_hash));
    await tx.query('DELETE FROM refresh_tokens WHERE token_hash = ANY($1)', [refreshTokenKeys]);
  }

  /** The refresh tokens of devices go (logout, device deletion, a new login reusing the device id). */
  async revokeRefreshTokensOfDevices(tx: Queryable, userId: string, deviceIds: string[]): Promise<void> {
    if (deviceIds.length === 0) return;
    await tx.query('DELETE FROM refresh_tokens WHERE user_id = $1 AND device_id = ANY($2)', [userId, deviceIds]);
  }

  private touch(requester: Requester, ip: string | undefined): void {
    const key = `${requester.userId}|${requester.deviceId}`;
    const now = Date.now();
    if ((this.lastTouched.get(key) ?? 0) > now - 60_000) return;
    this.lastTouched.set(key, now);
    if (this.lastTouched.size > 100_000) this.lastTouched.clear();
    this.db
      .query('UPDATE devices SET last_seen_ts = $3, last_seen_ip = COALESCE($4, last_seen_ip) WHERE user_id = $1 AND device_id = $2', [requester.userId, requester.deviceId, now, ip ?? null])
      .catch(() => undefined);
  }

  /**
   * Revokes tokens by key (inside the caller's transaction). Opaque tokens are gone with their
   * row; JWTs also go on the revocation list, since their signature stays valid.
   */
  async revokeKeys(tx: Queryable, tokenKeys: string[]): Promise<void> {
    if (tokenKeys.length === 0) return;
    // Before the delete: from now on no replica trusts a cached copy of these tokens.
    this.changes.emitTokensRevoked(tokenKeys);
    await tx.query('DELETE FROM access_tokens WHERE token_hash = ANY($1)', [tokenKeys]);
    const now = Date.now();
    for (const key of tokenKeys) {
      if (key.startsWith('jwt:')) {
        await tx.query('INSERT INTO revoked_access_tokens (jti, revoked_ts) VALUES ($1, $2) ON CONFLICT DO NOTHING', [key.slice(4), now]);
      }
    }
  }

  async tokenKeysOfDevice(tx: Queryable, userId: string, deviceId: string): Promise<string[]> {
    const { rows } = await tx.query<{ token_hash: string }>('SELECT token_hash FROM access_tokens WHERE user_id = $1 AND device_id = $2', [userId, deviceId]);
    return rows.map((r) => r.token_hash);
  }
}
